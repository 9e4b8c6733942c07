"""`pyrkt config`: rkt's merged {"stage0": [...]} with secrets masked, and the default stage1
flavor that stage1.d gives run and prepare."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pyrkt.cli import main as cli
from pyrkt.cli.commands.run import stage1_choice
from pyrkt.cli.flags import FlagSet
from pyrkt.config import Config, ConfigDirs
from pyrkt.errors import UsageError


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def auth(domains: list[str], typ: str, creds: dict[str, str]) -> dict[str, object]:
    return {"rktKind": "auth", "rktVersion": "v1", "domains": domains, "type": typ, "credentials": creds}


def docker(registries: list[str], user: str, password: str) -> dict[str, object]:
    return {"rktKind": "dockerAuth", "rktVersion": "v1", "registries": registries,
            "credentials": {"user": user, "password": password}}


def config_out(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([f"--dir={tmp_path / 'data'}", f"--system-config={tmp_path / 'system'}",
                     f"--local-config={tmp_path / 'local'}", f"--user-config={tmp_path / 'user'}", "config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_config_prints_each_domain_and_registry_merged_with_secrets_masked(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "system/auth.d/basic.json", auth(["tectonic.com", "coreos.com"], "basic",
                                                      {"user": "user", "password": "userPassword"}))
    write(tmp_path / "user/auth.d/basic.json", auth(["tectonic.com"], "oauth", {"token": "someToken"}))
    write(tmp_path / "system/auth.d/docker.json", docker(["quay.io", "gcr.io"], "docker", "dockerPassword"))
    write(tmp_path / "user/auth.d/docker.json", docker(["gcr.io"], "over", "written"))
    write(tmp_path / "local/paths.d/p.json", {"rktKind": "paths", "rktVersion": "v1", "stage1-images": "/s1"})
    write(tmp_path / "local/stage1.d/s.json", {"rktKind": "stage1", "rktVersion": "v1", "name": "coreos.com/rkt/stage1-fly",
                                               "version": "1.30.0"})
    code, out, err = config_out(capsys, tmp_path)
    assert (code, err) == (0, "")
    for secret in ("userPassword", "someToken", "dockerPassword", "written"):
        assert secret not in out
    assert out.startswith('{\n\t"stage0": [\n\t\t{\n') and out.endswith("}\n")  # rkt's tab indentation
    assert json.loads(out) == {"stage0": [
        {"rktVersion": "v1", "rktKind": "auth", "domains": ["coreos.com"], "type": "basic",
         "credentials": {"user": "user", "password": "******"}},
        {"rktVersion": "v1", "rktKind": "auth", "domains": ["tectonic.com"], "type": "oauth",
         "credentials": {"token": "******"}},
        {"rktVersion": "v1", "rktKind": "dockerAuth", "registries": ["gcr.io"], "credentials": {"user": "over", "password": "******"}},
        {"rktVersion": "v1", "rktKind": "dockerAuth", "registries": ["quay.io"], "credentials": {"user": "docker", "password": "******"}},
        {"rktVersion": "v1", "rktKind": "paths", "data": "", "stage1-images": "/s1"},
        {"rktVersion": "v1", "rktKind": "stage1", "name": "coreos.com/rkt/stage1-fly", "version": "1.30.0", "location": ""},
        {"rktVersion": "v1", "rktKind": "store", "maxImportBytes": 64 << 30, "minFreeBytes": None},
    ]}


def test_config_without_pretty_print_is_one_compact_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "local/store.d/s.json", {"rktKind": "store", "rktVersion": "v1", "minFreeBytes": 4096})
    code, out, _ = config_out(capsys, tmp_path, "--pretty-print=false")
    assert code == 0 and out.count("\n") == 1 and ", " not in out
    assert json.loads(out)["stage0"][-1] == {"rktVersion": "v1", "rktKind": "store", "maxImportBytes": 64 << 30,
                                             "minFreeBytes": 4096}


def test_config_with_a_bad_file_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "local/auth.d/aws.json", auth(["s3.example"], "aws", {"accessKeyID": "AKIA", "secretAccessKey": "aws-Secret"}))
    code, out, err = config_out(capsys, tmp_path)
    assert code == 254 and out == "" and err.count("\n") == 1
    assert "aws.json" in err and "auth type aws is not supported" in err and "aws-Secret" not in err


def ctx_for(tmp_path: Path) -> tuple[cli.Context, io.StringIO]:
    err = io.StringIO()
    dirs = ConfigDirs(system=str(tmp_path / "system"), local=str(tmp_path / "local"))
    return cli.Context(config=Config(dirs=dirs), global_flags=FlagSet([]), stderr=err), err


def stage1_name(ctx: cli.Context, flag: str) -> str:
    values = {"stage1_name": [flag] if flag else []}
    name, image = stage1_choice(ctx, values)
    return name if image is None else f"image {image.kind} {image.location} {image.fallback}".strip()


@pytest.mark.parametrize(("name", "flavor"), [("fly", "fly"), ("coreos.com/rkt/stage1-fly", "fly"),
                                              ("coreos.com/rkt/stage1-coreos", "default")])
def test_stage1_d_naming_a_flavor_makes_it_the_default(tmp_path: Path, name: str, flavor: str) -> None:
    write(tmp_path / "local/stage1.d/s.json", {"rktKind": "stage1", "rktVersion": "v1", "name": name, "version": "1.30.0",
                                               "location": "/usr/lib/rkt/stage1-images/stage1.aci"})
    ctx, err = ctx_for(tmp_path)
    assert stage1_name(ctx, "") == flavor and err.getvalue() == ""
    assert stage1_name(ctx, "default") == "default"  # --stage1-name wins


def test_stage1_d_naming_an_image_makes_it_the_stage1_with_its_location_to_fetch_it_from(tmp_path: Path) -> None:
    write(tmp_path / "local/stage1.d/s.json", {"rktKind": "stage1", "rktVersion": "v1",
                                               "name": "coreos.com/rkt/stage1-kvm", "version": "1.30.0",
                                               "location": "https://example.com/stage1-kvm.aci"})
    ctx, err = ctx_for(tmp_path)
    assert stage1_name(ctx, "") == "image config coreos.com/rkt/stage1-kvm:1.30.0 https://example.com/stage1-kvm.aci"
    assert err.getvalue() == ""
    assert stage1_name(ctx, "fly") == "fly"


def test_stage1_d_with_only_a_location_warns_that_the_built_in_default_wins(tmp_path: Path) -> None:
    write(tmp_path / "local/stage1.d/s.json", {"rktKind": "stage1", "rktVersion": "v1",
                                               "location": "/usr/lib/rkt/stage1-images/stage1-coreos.aci"})
    ctx, err = ctx_for(tmp_path)
    assert stage1_name(ctx, "") == "default"
    assert err.getvalue().count("\n") == 1 and "stage1-coreos.aci" in err.getvalue() and "no stage1 name" in err.getvalue()


def test_no_stage1_d_means_the_built_in_default_quietly(tmp_path: Path) -> None:
    ctx, err = ctx_for(tmp_path)
    assert stage1_name(ctx, "") == "default" and err.getvalue() == ""


def test_a_bad_stage1_d_fails_only_when_a_stage1_is_chosen(tmp_path: Path) -> None:
    write(tmp_path / "local/stage1.d/s.json", {"rktKind": "stage1", "rktVersion": "v1", "name": "n"})
    ctx, _ = ctx_for(tmp_path)
    assert stage1_name(ctx, "fly") == "fly"
    with pytest.raises(UsageError, match="s.json"):
        stage1_name(ctx, "")


def choose(tmp_path: Path, *args: str) -> tuple[str, object]:
    from pyrkt.cli.commands.apps import parse_pod_and_apps
    from pyrkt.cli.commands.run import RUN_FLAGS

    values, _ = parse_pod_and_apps(FlagSet(RUN_FLAGS), [*args, "img"])
    ctx, _ = ctx_for(tmp_path)
    name, image = stage1_choice(ctx, values, [*args, "img"])
    return name, None if image is None else (image.kind, image.location)


@pytest.mark.parametrize(("args", "want"), [
    (("--stage1-path=s1.aci",), ("image", ("path", "s1.aci"))),
    (("--stage1-url=https://example.com/s1.aci",), ("image", ("url", "https://example.com/s1.aci"))),
    (("--stage1-hash=sha512-0123",), ("image", ("hash", "sha512-0123"))),
    (("--stage1-from-dir=s1.aci",), ("image", ("from-dir", "s1.aci"))),
    (("--stage1-name=example.com/s1:1.0",), ("image", ("name", "example.com/s1:1.0"))),
    (("--stage1-name=coreos.com/rkt/stage1-fly",), ("fly", None)),
    (("--stage1-name=default",), ("default", None)),
    ((), ("default", None)),
])
def test_each_stage1_flag_chooses_where_the_stage1_comes_from(tmp_path: Path, args: tuple[str, ...],
                                                            want: tuple[str, object]) -> None:
    assert choose(tmp_path, *args) == want


def test_stage1_flags_are_mutually_exclusive_and_each_taken_once_in_rkts_words(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^flags --stage1-url and --stage1-path are mutually exclusive$"):
        choose(tmp_path, "--stage1-path=a", "--stage1-url=file:///b")
    with pytest.raises(UsageError, match="^flags --stage1-path and --stage1-url are mutually exclusive$"):
        choose(tmp_path, "--stage1-url=file:///b", "--stage1-path=a")
    with pytest.raises(UsageError, match="^--stage1-name already used$"):
        choose(tmp_path, "--stage1-name=fly", "--stage1-name=default")
