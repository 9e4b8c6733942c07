"""rkt's configuration files in the config dirs (pyrkt.config): the paths and stage1 kinds, the
rktKind/rktVersion rules every kind shares, and the data dir paths.d gives when --dir is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrkt.cli.flags import FlagSet
from pyrkt.cli.main import GLOBAL_FLAGS, config_from_flags, merge_config
from pyrkt.config import ConfigDirs, data_dir_for, kind_files, read_kind, read_paths, read_stage1
from pyrkt.errors import UsageError


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def dirs(tmp_path: Path) -> ConfigDirs:
    return ConfigDirs(system=str(tmp_path / "system"), local=str(tmp_path / "local"), user=str(tmp_path / "user"))


def paths(**kw: str) -> dict[str, str]:
    return {"rktKind": "paths", "rktVersion": "v1", **kw}


def stage1(**kw: str) -> dict[str, str]:
    return {"rktKind": "stage1", "rktVersion": "v1", **kw}


def test_paths_are_overridden_per_setting_by_later_dirs(tmp_path: Path) -> None:
    write(tmp_path / "system/paths.d/paths.json", paths(**{"data": "/usr/lib/rkt/data", "stage1-images": "/usr/lib/rkt/s1"}))
    write(tmp_path / "user/paths.d/paths.json", paths(data="/home/me/rkt/data"))
    got = read_paths(dirs(tmp_path))
    assert (got.data, got.stage1_images) == ("/home/me/rkt/data", "/usr/lib/rkt/s1")
    assert got.data_file == str(tmp_path / "user/paths.d/paths.json")


def test_no_paths_d_means_nothing_set(tmp_path: Path) -> None:
    assert (read_paths(dirs(tmp_path)).data, read_paths(dirs(tmp_path)).stage1_images) == ("", "")


@pytest.mark.parametrize(("files", "message"), [
    ({"a.json": paths(data="/a"), "b.json": paths(data="/b")}, "data is also set in .*a.json"),
    ({"a.json": paths(data="relative/dir")}, "data must be an absolute path"),
    ({"a.json": paths(stage1_images="/x")}, "unknown setting 'stage1_images'"),
    ({"a.json": {"rktVersion": "v1", "data": "/a"}}, "no rktKind"),
    ({"a.json": {"rktKind": "paths", "data": "/a"}}, "no rktVersion"),
    ({"a.json": paths(data="/a") | {"rktVersion": "v2"}}, "unsupported rktVersion 'v2' of paths"),
    ({"a.json": stage1(name="n", version="1")}, "rktKind 'stage1' does not belong in paths.d"),
    ({"a.json": {"rktKind": "whatever", "rktVersion": "v1"}}, "rktKind 'whatever' does not belong in paths.d"),
    ({"a.json": "{not json"}, "is not readable JSON: Expecting property name enclosed in double quotes at line 1 "
                              "column 2$"),
    ({"a.json": paths(data=["/a"])}, "data must be a string"),
])
def test_a_bad_paths_file_is_one_line_naming_it(tmp_path: Path, files: dict[str, object], message: str) -> None:
    for name, doc in files.items():
        write(tmp_path / "local/paths.d" / name, doc)
    with pytest.raises(UsageError, match=message) as err:
        read_paths(dirs(tmp_path))
    assert str(tmp_path / "local/paths.d") in str(err.value) and "\n" not in str(err.value)


def test_a_config_file_that_is_not_utf8_names_the_byte_and_quotes_nothing(tmp_path: Path) -> None:
    (tmp_path / "local/paths.d").mkdir(parents=True)
    (tmp_path / "local/paths.d/a.json").write_bytes(b'{"data": "/s3cret\xff"}')
    with pytest.raises(UsageError) as err:
        read_paths(dirs(tmp_path))
    assert str(err.value) == f"config file '{tmp_path}/local/paths.d/a.json' is not readable JSON: byte 17 is not UTF-8 text"


def test_a_config_dir_or_kind_dir_that_is_a_file_is_refused_as_rkt(tmp_path: Path) -> None:
    (tmp_path / "local").write_text("")
    with pytest.raises(UsageError, match=f"^config dir '{tmp_path}/local' is not a directory$"):
        read_paths(dirs(tmp_path))
    (tmp_path / "local").unlink()
    (tmp_path / "local").mkdir()
    (tmp_path / "local/paths.d").write_text("")
    with pytest.raises(UsageError, match=f"^config dir '{tmp_path}/local/paths.d' is not a directory$"):
        read_paths(dirs(tmp_path))


def test_keys_in_rkts_go_casing_are_read(tmp_path: Path) -> None:
    write(tmp_path / "local/paths.d/p.json", {"RktKind": "paths", "RKTVERSION": "v1", "Data": "/d"})
    write(tmp_path / "local/stage1.d/s.json", {"rktkind": "stage1", "rktVersion": "v1", "Name": "n", "Version": "1"})
    assert read_paths(dirs(tmp_path)).data == "/d"
    assert (read_stage1(dirs(tmp_path)).name, read_stage1(dirs(tmp_path)).version) == ("n", "1")


def test_only_json_files_directly_in_the_kind_dir_count(tmp_path: Path) -> None:
    write(tmp_path / "local/paths.d/README", "notes beside the configuration")
    write(tmp_path / "local/paths.d/old.json.bak", "{not json")
    write(tmp_path / "local/paths.d/sub/deeper.json", paths(data="/deeper"))
    (tmp_path / "local/paths.d/dangling.json").symlink_to(tmp_path / "nowhere")
    assert kind_files([tmp_path / "local"], "paths.d") == [[]]
    assert read_paths(dirs(tmp_path)).data == ""


def test_stage1_name_and_version_override_together_and_location_alone(tmp_path: Path) -> None:
    write(tmp_path / "local/stage1.d/s.json", stage1(name="example.com/rkt/stage1", version="1.2.3",
                                                     location="http://example.com/download/stage1.aci"))
    write(tmp_path / "user/stage1.d/s.json", stage1(location="http://localhost:8080/stage1.aci"))
    got = read_stage1(dirs(tmp_path))
    assert (got.name, got.version, got.location) == ("example.com/rkt/stage1", "1.2.3", "http://localhost:8080/stage1.aci")
    assert got.name_file.startswith(str(tmp_path / "local")) and got.location_file.startswith(str(tmp_path / "user"))


@pytest.mark.parametrize("location", ["/usr/lib/rkt/stage1.aci", "file:///s.aci", "docker://quay.io/s1", "HTTPS://e/s.aci"])
def test_stage1_locations_rkt_allows(tmp_path: Path, location: str) -> None:
    write(tmp_path / "local/stage1.d/s.json", stage1(location=location))
    assert read_stage1(dirs(tmp_path)).location == location


@pytest.mark.parametrize(("doc", "message"), [
    (stage1(name="n"), "name is set, its version is not"),
    (stage1(version="1"), "version is set, its name is not"),
    (stage1(location="stage1.aci"), "neither an absolute path nor a URL"),
    (stage1(location="ftp://e/s.aci"), "has scheme 'ftp'"),
    (paths(data="/d"), "rktKind 'paths' does not belong in stage1.d"),
])
def test_a_bad_stage1_file_is_one_line_naming_it(tmp_path: Path, doc: dict[str, str], message: str) -> None:
    write(tmp_path / "system/stage1.d/s.json", doc)
    with pytest.raises(UsageError, match=message) as err:
        read_stage1(dirs(tmp_path))
    assert "s.json" in str(err.value)


def test_one_dir_naming_the_default_stage1_twice_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "local/stage1.d/a.json", stage1(name="a", version="1"))
    write(tmp_path / "local/stage1.d/b.json", stage1(name="b", version="1"))
    with pytest.raises(UsageError, match="name is also set in .*a.json"):
        read_stage1(dirs(tmp_path))


def test_read_kind_names_the_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.d/a.json", {"rktKind": "dockerAuth", "rktVersion": "v1"})
    assert read_kind(str(path), ("auth", "dockerAuth"))[0] == "dockerAuth"


def test_data_dir_is_dir_flag_else_paths_d_else_the_default(tmp_path: Path) -> None:
    d = dirs(tmp_path)
    assert data_dir_for("", d) == ("/var/lib/pyrkt", "default")
    write(tmp_path / "local/paths.d/p.json", paths(data=str(tmp_path / "data")))
    assert data_dir_for("", d) == (str(tmp_path / "data"), str(tmp_path / "local/paths.d/p.json"))
    assert data_dir_for(str(tmp_path / "flag"), d) == (str(tmp_path / "flag"), "--dir")


def test_config_dirs_given_after_the_command_choose_the_paths_d(tmp_path: Path) -> None:
    write(tmp_path / "other/paths.d/p.json", paths(data=str(tmp_path / "other-data")))
    values = FlagSet(GLOBAL_FLAGS).parse([f"--local-config={tmp_path / 'local'}", f"--system-config={tmp_path / 's'}"])[0]
    config = config_from_flags(values)
    assert config.data_dir_source == "default"
    later = merge_config(config, {"local_config": str(tmp_path / "other")})
    assert later.data_dir == str(tmp_path / "other-data")
    flagged = merge_config(config.replace(data_dir="/x", data_dir_source="--dir"), {"local_config": str(tmp_path / "other")})
    assert flagged.data_dir == "/x"  # --dir wins over any paths.d
