"""What an import may expand to: the ``store.d`` settings, the shared budget, sparse files
written sparse, and bombs stopped while they are written (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support.bombs import bomb_layer, compressed, have_gnu_tar, runs_tar, sparse_tar
from tests.support.images import Entry, layer_tar, sha256

from pyrkt.errors import ImageError, UsageError
from pyrkt.store.layers import unpack
from pyrkt.store.limits import (
    DEFAULT_MAX_IMPORT_BYTES,
    GiB,
    ImportBudget,
    ImportLimits,
    MiB,
    format_bytes,
    parse_store_config,
    read_import_limits,
)
from pyrkt.store.parallel import UnpackJob, unpack_all

BLOB = "sha256:" + "cd" * 32
TiB = 1 << 40


def write_config(d: Path, name: str, text: str) -> None:
    (d / "store.d").mkdir(parents=True, exist_ok=True)
    (d / "store.d" / name).write_text(text)


# -- settings ------------------------------------------------------------------------------


def test_defaults_are_64_gib_and_a_reserve_of_5_percent_up_to_1_gib(tmp_path: Path) -> None:
    limits = read_import_limits([tmp_path / "none", tmp_path / "also-none"])
    assert limits.max_import_bytes == DEFAULT_MAX_IMPORT_BYTES == 64 * GiB
    assert limits.reserve(10 * GiB) == 512 * MiB
    assert limits.reserve(200 * GiB) == GiB
    assert ImportLimits(min_free_bytes=7).reserve(200 * GiB) == 7


def test_keys_match_without_regard_to_case_and_later_dirs_override(tmp_path: Path) -> None:
    system, local, user = tmp_path / "system", tmp_path / "local", tmp_path / "user"
    write_config(system, "a.json", '{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": 1000, '
                                   '"minFreeBytes": 5}')
    write_config(local, "b.json", '{"RKTKIND": "store", "rktversion": "v1", "MaxImportBYTES": 2000}')
    write_config(user, "c.json", '{"rktKind": "store", "rktVersion": "v1", "minfreebytes": 9}')
    write_config(user, "ignored.txt", "not json")
    assert read_import_limits([system, local]) == ImportLimits(2000, 5)
    assert read_import_limits([system, local, user]) == ImportLimits(2000, 9)


def test_one_dir_setting_a_key_twice_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, "a.json", '{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": 1}')
    write_config(tmp_path, "b.json", '{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": 2}')
    with pytest.raises(UsageError, match=r"b\.json'?: maxImportBytes is also set in .*a\.json"):
        read_import_limits([tmp_path])


@pytest.mark.parametrize(("text", "message"), [
    ('{"rktKind": "paths", "rktVersion": "v1"}', "rktKind 'paths' does not belong in store.d"),
    ('{"rktKind": "store", "rktVersion": "v2"}', "unsupported rktVersion 'v2'"),
    ('{"rktKind": "store", "rktVersion": "v1", "maxImportByte": 1}', "unknown setting 'maxImportByte'"),
    ('{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": "64GiB"}', "must be a number of bytes"),
    ('{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": -1}', "must be a number of bytes"),
    ('{"rktKind": "store", "rktVersion": "v1", "minFreeBytes": true}', "must be a number of bytes"),
    ('{"rktKind": "store", "rktVersion": "v1", "maxImportBytes": 1.5}', "must be a number of bytes"),
    ("[1, 2]", "is not a JSON object"),
    ("{", "is not valid JSON"),
    ("[" * 200_000, "is not valid JSON"),
])
def test_a_bad_store_config_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        parse_store_config(text.encode(), "/etc/pyrkt/store.d/x.json")
    assert "\n" not in str(err.value) and "/etc/pyrkt/store.d/x.json" in str(err.value)


def test_sizes_read_as_a_person_writes_them() -> None:
    assert format_bytes(64 * GiB) == "64 GiB"
    assert format_bytes(64 * MiB) == "64 MiB"
    assert format_bytes(3 * MiB // 2) == "1.5 MiB"
    assert format_bytes(100) == "100 bytes"


# -- the budget ----------------------------------------------------------------------------


def budget(tmp_path: Path, limit: int, reserve: int | None = 0) -> ImportBudget:
    return ImportBudget(ImportLimits(limit, reserve), str(tmp_path), "oci:/x")


def test_budget_refuses_the_charge_that_passes_the_limit(tmp_path: Path) -> None:
    b = budget(tmp_path, 100)
    b.charge(60, "layer sha256:ab")
    b.check_fits(40, "layer sha256:ab")
    with pytest.raises(ImageError) as err:
        b.check_fits(41, "layer sha256:ab")
    assert str(err.value) == ("image oci:/x: layer sha256:ab expands past the 100 bytes import limit "
                              "(store setting maxImportBytes)")
    with pytest.raises(ImageError, match="expands past"):
        b.charge(41, "layer sha256:ab")


def test_budget_refuses_to_eat_into_the_free_space_reserve(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    b = budget(tmp_path, 1 << 62, reserve=st.f_bavail * st.f_frsize + GiB)
    with pytest.raises(ImageError, match=r"would leave less than .* free on the filesystem of .* "
                                         r"\(store setting minFreeBytes\)"):
        b.charge(1, "layer sha256:ab")


def test_forked_children_draw_on_one_budget(tmp_path: Path) -> None:
    b = budget(tmp_path, 1000)
    b.charge(100, "x")
    slots = [b.new_slot() for _ in range(2)]
    pids = []
    for slot in slots:
        pid = os.fork()
        if pid == 0:
            b.use_slot(slot)
            b.charge(300, "x")
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert b.used == 700
    for slot in slots:
        b.release_slot(slot)
    assert b.used == 700 and b.new_slot() in slots  # a freed slot is used again, the bytes stay
    with pytest.raises(ImageError):
        b.charge(301, "x")


# -- sparse files --------------------------------------------------------------------------

needs_gnu_tar = pytest.mark.skipif(not have_gnu_tar(), reason="needs GNU tar to make sparse archives")


def unpack_blob(tmp_path: Path, blob: bytes, diff_id: str, b: ImportBudget | None, name: str = "layer") -> Path:
    path = tmp_path / f"{name}.blob"
    path.write_bytes(blob)
    dest = tmp_path / name
    dest.mkdir()
    unpack(path, dest, diff_id=diff_id, layer=BLOB, privileged=False, budget=b)
    return dest


@needs_gnu_tar
@pytest.mark.parametrize("fmt", ["gnu", "0.0", "0.1", "1.0"])
def test_a_sparse_file_is_written_with_its_holes(tmp_path: Path, fmt: str) -> None:
    blocks = [(1 << 30, b"first"), (TiB - 4, b"last")]
    tar = sparse_tar(tmp_path / "src", TiB, blocks, fmt=fmt)
    assert len(tar) < 64 << 10
    b = budget(tmp_path, 2 * TiB)
    d = unpack_blob(tmp_path, tar, sha256(tar), b)
    st = os.stat(d / "sparse")
    assert st.st_size == TiB and st.st_blocks * 512 < 1 * MiB
    with open(d / "sparse", "rb") as f:
        assert os.pread(f.fileno(), 5, 1 << 30) == b"first"
        assert os.pread(f.fileno(), 4, TiB - 4) == b"last"
        assert os.pread(f.fileno(), 8, 4096) == bytes(8)
    assert TiB <= b.used < TiB + MiB  # counted at its apparent size


@needs_gnu_tar
def test_a_sparse_file_past_the_limit_is_refused_before_it_is_written(tmp_path: Path) -> None:
    tar = sparse_tar(tmp_path / "src", TiB, [(0, b"x")])
    with pytest.raises(ImageError, match=r"expands past the 64 GiB import limit"):
        unpack_blob(tmp_path, tar, sha256(tar), budget(tmp_path, 64 * GiB))
    assert not (tmp_path / "layer" / "sparse").exists()


def test_zero_chunks_of_a_large_file_become_holes(tmp_path: Path) -> None:
    layer = bomb_layer([("zeros", 64 * MiB)], "zstd")
    d = unpack_blob(tmp_path, layer.blob, layer.diff_id, None)
    st = os.stat(d / "zeros")
    assert st.st_size == 64 * MiB and st.st_blocks * 512 < MiB
    with open(d / "zeros", "rb") as f:
        assert f.read() == bytes(64 * MiB)


# -- bombs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "bzip2", "xz"])
def test_a_bomb_stops_at_the_limit_while_it_is_written(tmp_path: Path, compression: str) -> None:
    """Many files of 1 MiB (each fits): the stream's bytes pass the limit part-way, and what was
    written by then is no more than the limit."""
    layer = bomb_layer([(f"f{i:03d}", MiB) for i in range(40)], compression, fill=b"A")
    assert len(layer.blob) < 2 * MiB
    with pytest.raises(ImageError, match=r"^image oci:/x: layer sha256:(cd)+ expands past the 16 MiB import limit"):
        unpack_blob(tmp_path, layer.blob, layer.diff_id, budget(tmp_path, 16 * MiB))
    written = sum(os.stat(p).st_blocks * 512 for p in (tmp_path / "layer").iterdir())
    assert 8 * MiB < written <= 16 * MiB


def test_one_huge_member_is_refused_by_its_header(tmp_path: Path) -> None:
    """The tar says 256 MiB before a byte of it is read: nothing is written."""
    layer = bomb_layer([("huge", 256 * MiB)], "zstd", fill=b"A")
    with pytest.raises(ImageError, match="expands past the 64 MiB import limit"):
        unpack_blob(tmp_path, layer.blob, layer.diff_id, budget(tmp_path, 64 * MiB))
    assert os.listdir(tmp_path / "layer") == []


def test_layers_unpacked_side_by_side_share_the_limit(tmp_path: Path) -> None:
    """Four forked unpackers of 12 MiB each: each alone fits in 32 MiB, together they do not."""
    jobs = []
    for i in range(4):
        layer = bomb_layer([(f"f{j}", MiB) for j in range(12)], "gzip", fill=bytes([65 + i]))
        blob = tmp_path / f"blob{i}"
        blob.write_bytes(layer.blob)
        (tmp_path / f"l{i}").mkdir()
        jobs.append(UnpackJob(blob, tmp_path / f"l{i}", layer.diff_id, f"sha256:{i:064x}"))
    with pytest.raises(ImageError, match="expands past the 32 MiB import limit"):
        unpack_all(jobs, workers=4, budget=budget(tmp_path, 32 * MiB))
    b = budget(tmp_path, 64 * MiB)
    for i in range(4):
        for p in (tmp_path / f"l{i}").iterdir():
            p.unlink()
    assert len(unpack_all(jobs, workers=4, budget=b)) == 4
    assert 48 * MiB <= b.used < 50 * MiB


def test_the_stream_past_the_tar_end_counts_too(tmp_path: Path) -> None:
    """Zeros after the end marker write nothing but cost a pass of decompression and hashing:
    the limit stops them as well."""
    blob, diff_id = compressed(iter([layer_tar([("a", Entry.file(b"a"))])] + [bytes(MiB)] * 40), "zstd")
    with pytest.raises(ImageError, match="expands past the 16 MiB import limit"):
        unpack_blob(tmp_path, blob, diff_id, budget(tmp_path, 16 * MiB))


def test_runs_tar_is_a_valid_tar_of_the_sizes_asked(tmp_path: Path) -> None:
    import io
    import tarfile

    data = b"".join(runs_tar([("d/", 0), ("d/f", 1000)], fill=b"ab", head=[("h", b"head")]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert [(m.name, m.size) for m in tf] == [("h", 4), ("d", 0), ("d/f", 1000)]


# -- what the kernel refuses ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["x" * 300, "/".join(["d" * 200] * 25) + "/f"])
def test_a_name_the_kernel_finds_too_long_is_one_line(tmp_path: Path, name: str) -> None:
    tar = layer_tar([(name, Entry.file(b"x"))])
    with pytest.raises(ImageError) as err:
        unpack_blob(tmp_path, tar, sha256(tar), None)
    message = str(err.value)
    assert message.startswith(f"layer {BLOB}: member '{name[:80]}… ({len(name)} characters)' cannot be unpacked: ")
    assert message.endswith("File name too long") and "\n" not in message
