"""Inputs pyrkt used to accept or to answer with a traceback are refused with one line
(``pyrkt: ...``) and exit 254: a data dir that is a file, a negative grace period, an empty
app name, a relative working dir, a hostname that is not one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.cli import main as cli
from pyrkt.cli.durations import parse_period
from pyrkt.config import Config, check_data_dir
from pyrkt.errors import UsageError
from pyrkt.stage0.run import RunOptions, check_options


def pyrkt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [["list"], ["image", "list"], ["status", "abc"], ["gc"], ["image", "gc"],
                                  ["fetch", "oci:/nonexistent"]])
def test_a_data_dir_that_is_a_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               argv: list[str]) -> None:
    (tmp_path / "file").write_text("")
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}/file", *argv)
    assert (code, out, err) == (254, "", f"pyrkt: data directory {tmp_path}/file is not a directory\n")


def test_a_data_dir_below_a_file_is_one_line_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = pyrkt(capsys, "list", f"--dir={tmp_path}/file/data")
    assert (code, err) == (254, f"pyrkt: data directory {tmp_path}/file/data is not a directory "
                                f"({tmp_path}/file is not a directory)\n")


def test_a_missing_data_dir_under_a_directory_is_fine(tmp_path: Path) -> None:
    assert check_data_dir(str(tmp_path / "new" / "data")) == str(tmp_path / "new" / "data")
    assert check_data_dir(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("argv", [["gc", "--grace-period=-5s"], ["gc", "--expire-prepared=-1h"],
                                  ["image", "gc", "--grace-period=-1ns"]])
def test_negative_periods_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]) -> None:
    flag, _, value = argv[-1][2:].partition("=")
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}", *argv)
    assert (code, out, err) == (254, "", f"pyrkt: invalid --{flag}={value!r}: must not be negative\n")


def test_zero_and_positive_periods_are_seconds() -> None:
    assert parse_period("0s", "grace-period") == 0
    assert parse_period("30m", "grace-period") == 1800
    with pytest.raises(UsageError, match="must not be negative"):
        parse_period("-0.5s", "grace-period")


@pytest.mark.parametrize("args, line", [
    (["oci:/x", "--name="], "pyrkt: invalid app name '': an app name cannot be empty\n"),
    (["oci:/x", "--name", ""], "pyrkt: invalid app name '': an app name cannot be empty\n"),
    (["oci:/x", "--working-dir=rel/dir"], "pyrkt: invalid --working-dir 'rel/dir': it must be an absolute path\n"),
    (["oci:/x", "--working-dir", "."], "pyrkt: invalid --working-dir '.': it must be an absolute path\n"),
])
@pytest.mark.parametrize("command", ["run", "prepare"])
def test_per_app_flags_are_checked_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   command: str, args: list[str], line: str) -> None:
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}", command, *args)
    assert (code, out, err) == (254, "", line)


@pytest.mark.parametrize("hostname", ["a_b", "-a", "a-", "a..b", ".a", "a.", "x" * 64, ("a" * 62 + ".") * 4 + "aa",
                                      "ä", "a b", "a\nb"])
def test_invalid_hostnames_are_refused(hostname: str) -> None:
    with pytest.raises(UsageError) as e:
        check_options(Config(), RunOptions(hostname=hostname, net=("none",)))
    assert str(e.value).startswith(f"invalid hostname {hostname!r}: ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("hostname", ["a", "web-1", "Pod-7.example.com", "x" * 63, "1.2.3.4", ("a" * 62 + ".") * 3 + "a" * 61])
def test_rfc_1123_hostnames_are_accepted(hostname: str) -> None:
    check_options(Config(), RunOptions(hostname=hostname, net=("none",)))


needs_a_user = pytest.mark.skipif(os.geteuid() == 0, reason="root reads any dir: the refusal is a user's")


@needs_a_user
@pytest.mark.parametrize("argv", [["list"], ["status", "abc"]])
def test_pods_a_user_may_not_read_are_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                argv: list[str]) -> None:
    (tmp_path / "pods" / "prepare").mkdir(parents=True, mode=0o700)
    (tmp_path / "pods" / "prepare").chmod(0)
    try:
        code, out, err = pyrkt(capsys, f"--dir={tmp_path}", *argv)
    finally:
        (tmp_path / "pods" / "prepare").chmod(0o700)
    assert (code, out, err) == (254, "", f'pyrkt: Permission denied: "{tmp_path}/pods/prepare" (run as root)\n')


@needs_a_user
@pytest.mark.parametrize("argv", [["image", "list"], ["image", "verify", "busybox"]])
def test_a_store_a_user_may_not_read_is_said_so_not_shown_empty(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               argv: list[str]) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "index.db").write_text("")
    store.chmod(0)
    try:
        code, out, err = pyrkt(capsys, f"--dir={tmp_path}", *argv)
    finally:
        store.chmod(0o700)
    assert (code, out) == (254, "")
    assert err == f"pyrkt: cannot read the image store in {store}: permission denied (run as root)\n"


def test_an_os_error_no_command_caught_is_one_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrkt.cli.commands import version

    def fails(*_: object) -> int:
        raise OSError(28, "No space left on device", "/var/lib/pyrkt/pods/run/x/pod")

    monkeypatch.setattr(version, "run", fails)
    code, out, err = pyrkt(capsys, "version")
    assert (code, out, err) == (254, "", 'pyrkt: No space left on device: "/var/lib/pyrkt/pods/run/x/pod"\n')


@pytest.mark.parametrize("image", ["oci-archive:/nonexistent.tar", "docker://busybox"])
def test_fetch_refuses_a_signature_for_an_oci_or_docker_image(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             image: str) -> None:
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}/data", "fetch", "--signature=/nonexistent", image)
    assert (code, out) == (254, "")
    assert err == (f"pyrkt: --signature cannot be used with {image}: an OCI or Docker image has no appc detached "
                   "signature to check (--signature is an ACI's .asc file)\n")
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_run_and_prepare_refuse_a_signature_after_an_oci_image_before_any_fetch() -> None:
    from pyrkt.stage0.prepare import AppRequest, check_signatures

    check_signatures([AppRequest(image="./app.aci", signature="app.asc"), AppRequest(image="docker://busybox")])
    with pytest.raises(UsageError, match="^--signature cannot be used with oci:/img: an OCI or Docker image"):
        check_signatures([AppRequest(image="./app.aci", signature="app.asc"),
                          AppRequest(image="oci:/img", signature="img.asc")])


@pytest.mark.parametrize("argv", [["image", "rm"], ["image", "cat-manifest"], ["image", "verify"],
                                  ["image", "export", "--format=aci"], ["fetch", "--pull-policy=never"]])
def test_an_image_name_of_bytes_that_are_not_utf8_is_not_found_not_a_traceback(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]) -> None:
    name = os.fsdecode(b"app\xff")  # as Python gives a command-line argument that is not UTF-8
    extra = [f"{tmp_path}/out.aci"] if "export" in argv else []
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}", *argv, name, *extra)
    assert (code, out, err) == (254, "", 'pyrkt: image "app\\udcff" not found in the store\n')


def test_version_refuses_an_argument_as_list_and_gc_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert pyrkt(capsys, "version", "extra") == (254, "", "pyrkt: version takes no arguments (got 'extra')\n")


@pytest.mark.parametrize(("args", "line"), [
    (["--user=4294967295"], "invalid --user '4294967295': ids are 0 to 4294967294"),
    (["--group=4294967295"], "invalid --group '4294967295': ids are 0 to 4294967294"),
    (["--supplementary-gids=1,-1"], "invalid --supplementary-gids '1,-1': gids are 0 to 4294967294"),
])
def test_ids_that_are_no_ids_are_refused_before_the_pod(args: list[str], line: str) -> None:
    from pyrkt.model.image import AppSpec, Image
    from pyrkt.stage0.prepare import AppRequest, PodRequest, reify

    image = Image(id="sha512-" + "0" * 128, name="example.com/app", app=AppSpec(exec=("/bin/app",)))
    fs = {a.split("=")[0][2:].replace("-", "_"): a.split("=", 1)[1] for a in args}
    with pytest.raises(UsageError, match=f"^{line}$"):
        reify(PodRequest(apps=[AppRequest(image="x", **fs)]), [image])


@pytest.mark.parametrize("flag, line", [
    ("--sysctl=kernel.shmmax=abc", "pyrkt: invalid --sysctl value 'abc' for kernel.shmmax: want an integer\n"),
    ("--sysctl=net.ipv4.ip_local_port_range=1024", "pyrkt: invalid --sysctl value '1024' for "
                                                   "net.ipv4.ip_local_port_range: want 2 integers separated by spaces\n"),
])
@pytest.mark.parametrize("command", [["run", "oci:/x"], ["prepare", "oci:/x"], ["run-prepared", "0" * 8],
                                     ["app", "sandbox"]])
def test_sysctl_values_the_kernel_would_refuse_fail_before_any_work(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path, command: list[str], flag: str,
                                                                    line: str) -> None:
    code, out, err = pyrkt(capsys, f"--dir={tmp_path / 'data'}", *command, flag)
    assert (code, out, err) == (254, "", line)
    assert not (tmp_path / "data").exists()  # no pod dir, no store: nothing made


@pytest.mark.parametrize("arg", ["oci:/nonexistent@sha256:zz", "oci-archive:/x.tar@sha512:ab",
                                 "docker://example.com/name@sha256:zz"])
def test_a_malformed_digest_is_refused_before_anything_is_stored(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                  arg: str) -> None:
    code, out, err = pyrkt(capsys, f"--dir={tmp_path / 'data'}", "fetch", arg)
    digest = arg.rpartition("@")[2]
    what = "docker image reference 'example.com/name@sha256:zz'" if arg.startswith("docker") else \
        f"image reference {arg!r}"
    assert (code, out, err) == (254, "", f"pyrkt: invalid {what}: bad digest {digest!r}: want sha256:<64 hex "
                                         "digits> or sha512:<128 hex digits>\n")
    assert not (tmp_path / "data").exists()
