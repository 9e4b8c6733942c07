"""The `app` command group's command lines, before any pod is touched: usage errors are one
line and exit 254, `-h` after `--` belongs to the command run in the app, `pyrkt app` lists
the group."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrkt.cli import main as cli


def pyrkt(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    code = cli.main([f"--dir={tmp_path}", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_app_alone_lists_the_group_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = pyrkt(capsys, tmp_path, "app")
    assert code == 254 and out == ""
    listed = [line.split()[1] for line in err.splitlines() if line.startswith("  app ")]
    assert listed == ["sandbox", "add", "start", "stop", "rm", "list", "status", "exec"]


def test_app_help_goes_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = pyrkt(capsys, tmp_path, "app", "add", "--help")
    assert code == 0 and "--mnt-volume" in out


@pytest.mark.parametrize(("argv", "line"), [
    (["app", "start", "abc"], "app start needs the app's name: --app=NAME"),
    (["app", "stop", "--app=web"], "app stop takes exactly one pod UUID"),
    (["app", "rm", "a", "b", "--app=web"], "app rm takes exactly one pod UUID"),
    (["app", "status", "abc"], "app status needs the app's name: --app=NAME"),
    (["app", "list"], "app list takes exactly one pod UUID"),
    (["app", "exec", "--app=web", "abc"], "app exec needs a command to run"),
    (["app", "exec", "abc", "--", "true"], "app exec needs the app's name: --app=NAME"),
    (["app", "exec", "--app=web", "--", "true"], "app exec takes exactly one pod UUID before --"),
    (["app", "add"], "app add needs the UUID of a mutable pod and an image"),
    (["app", "add", "abc"], "app add needs an image"),
    (["app", "add", "abc", "img-a", "img-b"], "app add takes exactly one image"),
    (["app", "add", "abc", "img", "--mnt-volume=name=v,kind=empty"], "want one absolute target=PATH"),
    # a one-dash word is a flag pyrkt does not have, never the UUID's or the image's place
    (["app", "add", "-x", "abc", "img"], "unknown shorthand flag '-x'"),
    (["app", "add", "abc", "-x", "img"], "unknown shorthand flag '-x'"),
    (["app", "sandbox", "--port=http:80"], "want NAME:PROTO:PODPORT:HOSTIP:HOSTPORT"),
    # a sandbox fetches no image: no pull policy or progress to set; its added apps get no metadata URL
    (["app", "sandbox", "--pull-policy=never"], "unknown flag: --pull-policy"),
    (["app", "sandbox", "--store-only"], "unknown flag: --store-only"),
    (["app", "sandbox", "--quiet"], "unknown flag: --quiet"),
    (["app", "sandbox", "--mds-register"], "unknown flag: --mds-register"),
])
def test_bad_app_command_lines_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                            line: str) -> None:
    code, out, err = pyrkt(capsys, tmp_path, *argv)
    assert (code, out) == (254, "")
    assert len(err.splitlines()) == 1 and err.startswith("pyrkt: ") and line in err, err


def test_a_help_flag_after_the_separator_is_the_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = pyrkt(capsys, tmp_path, "app", "exec", "abc", "--app=web", "--", "ls", "-h")
    assert "Usage" not in out  # not app exec's help: it went on (to the root check, or to find the pod)
    assert code == 254 and len(err.splitlines()) == 1


def test_app_sandbox_help_lists_rkts_pod_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """rkt/app_sandbox.go's flags, each in the help (run hides its pod-level user annotations
    and labels behind the per-app ones; a sandbox has no app to give them to)."""
    code, out, _ = pyrkt(capsys, tmp_path, "app", "sandbox", "--help")
    assert code == 0
    listed = {line.split()[0].split("=")[0] for line in out.splitlines() if line.strip().startswith("--")}
    assert {"--annotation", "--dns", "--dns-domain", "--dns-opt", "--dns-search", "--hostname", "--hosts-entry",
            "--net", "--no-overlay", "--port", "--user-annotation", "--user-label", "--uuid-file-save"} <= listed
