"""The CLI frame: flag parsing (cli/flags.py) and dispatch, help, errors and exit codes (cli/main.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from pyrkt import __version__
from pyrkt.cli import main as cli
from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.errors import NotFound, UsageError

# -- flags.py ---------------------------------------------------------------------------------

FLAGS = FlagSet([
    Flag("full", "bool"),
    Flag("name"),
    Flag("set-env", "list"),
    Flag("net", "opt", default="default", implicit="default"),
    Flag("format", default="", aliases=("output",)),
    Flag("secret", hidden=True, help="not shown"),
])


def test_flags_take_values_with_equals_or_as_next_argument() -> None:
    values, rest = FLAGS.parse(["--name=a", "IMG", "--name", "b"])
    assert values["name"] == "b"
    assert rest == ["IMG"]


@pytest.mark.parametrize("args, expected", [([], False), (["--full"], True), (["--full=true"], True),
                                            (["--full=false"], False), (["--full=0"], False)])
def test_bool_flags_accept_bare_and_explicit_values(args: list[str], expected: bool) -> None:
    assert FLAGS.parse(args)[0]["full"] is expected


def test_bool_flag_with_bad_value_names_flag_and_value() -> None:
    with pytest.raises(UsageError, match=r"invalid value 'maybe' for --full"):
        FLAGS.parse(["--full=maybe"])


def test_list_flags_collect_every_value_in_order() -> None:
    assert FLAGS.parse(["--set-env=A=1", "--set-env", "B=2"])[0]["set_env"] == ["A=1", "B=2"]


def test_list_flag_defaults_are_not_shared_between_parses() -> None:
    FLAGS.parse(["--set-env=A=1"])
    assert FLAGS.parse([])[0]["set_env"] == []


def test_opt_flag_alone_takes_its_implicit_value_and_never_eats_the_next_argument() -> None:
    values, rest = FLAGS.parse(["--net", "host"])
    assert values["net"] == "default"
    assert rest == ["host"]
    assert FLAGS.parse(["--net=host,none"])[0]["net"] == "host,none"


def test_aliases_set_the_same_value() -> None:
    assert FLAGS.parse(["--output=json"])[0]["format"] == "json"


def test_unknown_flag_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match=r"^unknown flag: --nope$"):
        FLAGS.parse(["--nope"])


def test_shorthand_flags_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown shorthand flag '-f'"):
        FLAGS.parse(["-f"])


def test_flag_without_its_value_at_the_end_is_an_error() -> None:
    with pytest.raises(UsageError, match=r"flag needs an argument: --name"):
        FLAGS.parse(["--name"])


def test_double_dash_ends_flags() -> None:
    values, rest = FLAGS.parse(["--full", "--", "--name=x", "-c"])
    assert values["name"] is None
    assert rest == ["--name=x", "-c"]


def test_lone_dash_is_a_positional_argument() -> None:
    assert FLAGS.parse(["-"])[1] == ["-"]


def test_without_interspersed_parsing_stops_at_first_positional() -> None:
    values, rest = FLAGS.parse(["--full", "IMG", "--name=web", "--nope"], interspersed=False)
    assert values["full"] is True
    assert rest == ["IMG", "--name=web", "--nope"]


def test_help_lines_show_defaults_and_hide_hidden_flags() -> None:
    text = "\n".join(FLAGS.help_lines())
    assert "--full " in text
    assert "--net=VALUE" in text and "(default default)" in text
    assert "secret" not in text


def test_help_prints_a_true_bool_default_as_go_does() -> None:
    text = "\n".join(FlagSet([Flag("pretty-print", "bool", default=True, help="indent")]).help_lines())
    assert text.endswith("indent (default true)")


def test_cat_manifest_and_run_help_as_rkt(capsys: pytest.CaptureFixture[str]) -> None:
    out = pyrkt(capsys, "cat-manifest", "--help")[1]
    assert "(default true)" in out and "True" not in out
    out = pyrkt(capsys, "run", "--help")[1]
    assert "--signature=FILE" in out  # rkt's run help lists its per-app --signature


# -- main.py ----------------------------------------------------------------------------------

def pyrkt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A `pyrkt probe` command that records the config it got and does what it is told."""
    seen: dict[str, Any] = {}

    def run(ctx: cli.Context, args: list[str]) -> int:
        values, rest = ctx.parse([Flag("full", "bool")], args)
        seen.update(config=ctx.config, values=values, rest=rest)
        if "boom" in rest:
            raise NotFound("no matches found for 'boom'", hint="see pyrkt list")
        return int(rest[0]) if rest and rest[0].isdigit() else 0

    module = types.ModuleType("pyrkt.cli.commands._probe")
    module.USAGE = "pyrkt probe [--full] [CODE]"  # type: ignore[attr-defined]
    module.FLAGS = [Flag("full", "bool", help="show everything")]  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "probe", ("_probe", "Probe the CLI frame"))
    return seen


def test_unknown_command_exits_254_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = pyrkt(capsys, "frobnicate")
    assert code == 254
    assert out == ""
    assert err == "pyrkt: unknown command 'frobnicate' (see pyrkt --help)\n"


@pytest.mark.parametrize("argv", [["--frob", "version"], ["version", "--frob"]])
def test_unknown_flag_before_or_after_command_exits_254_with_one_line(
        capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = pyrkt(capsys, *argv)
    assert code == 254
    assert err == "pyrkt: unknown flag: --frob\n"


def test_global_flags_before_the_command_set_the_config(capsys: pytest.CaptureFixture[str],
                                                        probe: dict[str, Any]) -> None:
    code, _, _ = pyrkt(capsys, "--dir=/tmp/d1", "--debug", "--insecure-options=image,tls", "probe")
    assert code == 0
    assert probe["config"].data_dir == "/tmp/d1"
    assert probe["config"].debug is True
    assert probe["config"].insecure == {"image", "tls"}


def test_global_flags_after_the_command_set_the_config_too(capsys: pytest.CaptureFixture[str],
                                                           probe: dict[str, Any]) -> None:
    code, _, _ = pyrkt(capsys, "--dir=/tmp/d1", "probe", "--full", "--dir", "/tmp/d2",
                       "--insecure-options=seccomp", "x")
    assert code == 0
    assert probe["config"].data_dir == "/tmp/d2"
    assert probe["config"].is_insecure("seccomp")
    assert probe["values"]["full"] is True
    assert probe["rest"] == ["x"]


def test_relative_data_dir_is_made_absolute(capsys: pytest.CaptureFixture[str], probe: dict[str, Any],
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pyrkt(capsys, "--dir=data", "probe")
    assert probe["config"].data_dir == str(tmp_path / "data")


def test_default_data_dir_is_var_lib_pyrkt(capsys: pytest.CaptureFixture[str], probe: dict[str, Any]) -> None:
    pyrkt(capsys, "probe")
    assert probe["config"].data_dir == "/var/lib/pyrkt"


def test_command_exit_code_is_the_process_exit_code(capsys: pytest.CaptureFixture[str],
                                                    probe: dict[str, Any]) -> None:
    assert pyrkt(capsys, "probe", "3")[0] == 3


def test_pyrkt_error_prints_one_line_and_exits_254(capsys: pytest.CaptureFixture[str],
                                                  probe: dict[str, Any]) -> None:
    code, _, err = pyrkt(capsys, "probe", "boom")
    assert code == 254
    assert err == "pyrkt: no matches found for 'boom'\n"


def test_debug_adds_the_errors_hint(capsys: pytest.CaptureFixture[str], probe: dict[str, Any]) -> None:
    code, _, err = pyrkt(capsys, "--debug", "probe", "boom")
    assert code == 254
    assert err == "pyrkt: no matches found for 'boom'\npyrkt: hint: see pyrkt list\n"


def test_bad_insecure_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrkt(capsys, "--insecure-options=everything", "version")
    assert code == 254
    assert err.startswith("pyrkt: unknown insecure option 'everything'")
    assert err.count("\n") == 1


def test_version_prints_pyrkt_and_appc_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = pyrkt(capsys, "version")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"pyrkt Version: {__version__}"
    assert lines[1] == "appc Version: 0.8.11"
    assert any(line.startswith("Python OS/Arch: linux/") for line in lines)


@pytest.mark.parametrize("argv", [["--help"], ["help"]])
def test_help_lists_commands_and_global_flags_on_stdout(capsys: pytest.CaptureFixture[str],
                                                        argv: list[str]) -> None:
    code, out, err = pyrkt(capsys, *argv)
    assert code == 0
    assert err == ""
    assert "Usage:" in out
    for command in ("run", "list", "status", "stop", "gc", "version"):
        assert f"\n  {command} " in out
    assert "--dir=VALUE" in out and "else /var/lib/pyrkt)" in out


def test_no_command_prints_usage_on_stderr_and_exits_254(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = pyrkt(capsys)
    assert code == 254
    assert out == ""
    assert "Usage:" in err


@pytest.mark.parametrize("argv", [["probe", "--help"], ["--help", "probe"], ["probe", "-h"]])
def test_command_help_shows_summary_usage_and_flags(capsys: pytest.CaptureFixture[str], probe: dict[str, Any],
                                                    argv: list[str]) -> None:
    code, out, _ = pyrkt(capsys, *argv)
    assert code == 0
    assert out.startswith("Probe the CLI frame\n")
    assert "pyrkt probe [--full] [CODE]" in out
    assert "--full" in out and "show everything" in out
    assert probe == {}  # help never runs the command


def test_image_alone_lists_image_subcommands_and_exits_254(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrkt(capsys, "image")
    assert code == 254
    assert "image list" in err and "image rm" in err
    assert "\n  run " not in err


def test_image_help_lists_image_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = pyrkt(capsys, "image", "--help")
    assert code == 0
    assert "image cat-manifest" in out


def test_unknown_image_subcommand_exits_254(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrkt(capsys, "image", "frob")
    assert code == 254
    assert err == "pyrkt: unknown command 'image frob' (see pyrkt --help)\n"


def test_python_dash_m_pyrkt_is_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyrkt", "version"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"pyrkt Version: {__version__}\n")


def test_python_dash_m_pyrkt_reports_errors_with_254() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyrkt", "frobnicate"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 254
    assert proc.stderr == "pyrkt: unknown command 'frobnicate' (see pyrkt --help)\n"


def test_the_collector_stays_off_for_the_hot_commands_only(capsys: pytest.CaptureFixture[str]) -> None:
    # run_and_exit turns the cyclic GC off for the start-up; dispatch turns it on again for a
    # command that may run long (cli.main.GC_OFF_COMMANDS)
    import gc

    assert {"run", "prepare", "run-prepared"} <= cli.GC_OFF_COMMANDS
    assert not {"cri", "api-service", "metadata-service", "fetch", "gc"} & cli.GC_OFF_COMMANDS
    gc.disable()
    try:
        assert pyrkt(capsys, "version")[0] == 0
        assert not gc.isenabled()
        assert pyrkt(capsys, "fetch", "--help")[0] == 0
        assert gc.isenabled()
    finally:
        gc.enable()


# -- ^C ----------------------------------------------------------------------------------------

def test_a_ctrl_c_while_a_command_runs_or_writes_its_error_exits_130_without_a_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(argv: object = None) -> int:
        raise KeyboardInterrupt  # e.g. in main's own `sys.stderr.write` of an error line

    def exit_(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(cli, "main", interrupted)
    monkeypatch.setattr(cli.os, "_exit", exit_)
    with pytest.raises(SystemExit) as ended:
        cli.run_and_exit()
    assert ended.value.code == 130
    assert capsys.readouterr() == ("", "")


def test_run_and_exit_gives_python_its_sigint_handler_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    seen = []
    monkeypatch.setattr(cli, "main", lambda argv=None: seen.append(signal.getsignal(signal.SIGINT)) or 0)
    monkeypatch.setattr(cli.os, "_exit", lambda code: None)
    old = signal.signal(signal.SIGINT, signal.SIG_DFL)  # as the launcher leaves it
    try:
        cli.run_and_exit()
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen == [cli.interrupt]


def test_a_ctrl_c_that_class_creation_wraps_ends_the_command_with_130(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # a ^C in a descriptor's __set_name__ (ipaddress' cached_property, as a lazy import makes its
    # classes) comes out of the class statement as a RuntimeError caused by the KeyboardInterrupt
    class Interrupting:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt

    def dispatch(*args: object) -> int:
        type("Made", (), {"field": Interrupting()})
        return 0

    monkeypatch.setattr(cli, "dispatch", dispatch)
    assert cli.main(["version"]) == 130
    assert capsys.readouterr() == ("", "")

    def failing(*args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "dispatch", failing)
    with pytest.raises(RuntimeError):  # any other RuntimeError is still pyrkt's bug, with its traceback
        cli.main(["version"])


def test_the_lock_callback_pyrkt_looks_for_is_this_pythons() -> None:
    import _frozen_importlib  # type: ignore[import-not-found]

    codes = [c for c in _frozen_importlib._get_module_lock.__code__.co_consts if isinstance(c, types.CodeType)]
    assert [(c.co_filename, c.co_qualname) for c in codes] == [cli.LOCK_CALLBACK]


def lock_callback(body: str) -> types.CodeType:
    """Code defining ``cb``, a callback as CPython's import system's (what drops a module's lock)."""
    source = f"def _get_module_lock():\n    def cb(ref):\n        {body}\n    return cb\ncb = _get_module_lock()\n"
    return compile(source, "<frozen importlib._bootstrap>", "exec")


def drop_a_module_lock(monkeypatch: pytest.MonkeyPatch, body: str, handler: Any,
                       **names: object) -> tuple[bool, list[object]]:
    """A lock dropped as the import system drops one, its weakref callback running ``body``
    (with ``names``) while ``handler`` handles SIGINT: whether a KeyboardInterrupt came out in
    the 0.2 s after, and what CPython printed as unraisable."""
    import weakref

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    scope: dict[str, object] = {"os": os, "signal": signal, **names}
    exec(lock_callback(body), scope)

    class Lock:
        pass

    lock = Lock()
    ref = weakref.ref(lock, scope["cb"])  # type: ignore[arg-type]
    raised = False
    old = signal.signal(signal.SIGINT, handler)
    old_alarm = signal.getsignal(signal.SIGALRM)
    try:
        del lock
        time.sleep(0.2)
    except KeyboardInterrupt:
        raised = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGALRM, old_alarm)
    assert ref() is None
    return raised, unraisable


@pytest.mark.parametrize("pyrkts", [True, False])
def test_a_ctrl_c_in_the_import_systems_weakref_callback_is_not_lost(monkeypatch: pytest.MonkeyPatch,
                                                                       pyrkts: bool) -> None:
    # the callback by which importlib drops a module's lock, as CPython's is named; Python's own
    # handler raises in it, and CPython prints that as "ignored" and drops it
    raised, unraisable = drop_a_module_lock(
        monkeypatch, "os.kill(os.getpid(), signal.SIGINT)\n        for _ in range(100):\n            pass",
        cli.interrupt if pyrkts else signal.default_int_handler)
    assert (raised, len(unraisable)) == ((True, 0) if pyrkts else (False, 1))


def test_a_ctrl_c_put_off_goes_to_whoever_handles_sigint_by_then(monkeypatch: pytest.MonkeyPatch) -> None:
    # a foreground run that has begun forwarding ^C to its pod gets it, rather than a KeyboardInterrupt
    forwarded: list[int] = []
    raised, unraisable = drop_a_module_lock(
        monkeypatch, "os.kill(os.getpid(), signal.SIGINT)\n        signal.signal(signal.SIGINT, forward)",
        cli.interrupt, forward=lambda s, f: forwarded.append(s))
    assert (forwarded, raised, unraisable) == ([signal.SIGINT], False, [])


def test_a_ctrl_c_while_the_launcher_loads_pyrkt_ends_it_without_a_traceback(tmp_path: Path) -> None:
    # the launcher scripts/write-launcher.py writes, over a pyrkt that gets a ^C while it loads
    venv, src = tmp_path / "venv", tmp_path / "src"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3").symlink_to(sys.executable)
    (src / "pyrkt" / "cli").mkdir(parents=True)
    (src / "pyrkt" / "__init__.py").write_text("")
    (src / "pyrkt" / "cli" / "__init__.py").write_text("")
    (src / "pyrkt" / "cli" / "main.py").write_text("import os, time\nos.kill(os.getpid(), 2)\ntime.sleep(5)\n")
    script = Path(__file__).resolve().parents[2] / "scripts" / "write-launcher.py"
    subprocess.run([sys.executable, str(script), str(venv), str(src)], check=True)
    # SIGINT back to its default through an exec, not a preexec_fn: a Python fork in this process
    # runs gRPC's fork handlers (an earlier test's server), whose poller may write to the child's stderr
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    p = subprocess.run([sys.executable, "-I", "-S", "-c", reset, str(venv / "bin" / "pyrkt"), "version"],
                       capture_output=True, text=True)
    assert (p.returncode, p.stdout, p.stderr) == (-signal.SIGINT, "", "")
