"""rkt users' command lines: a command's flags before its name (cobra takes them anywhere),
rkt's deprecated flag spellings, and the completion scripts made from pyrkt's own flag tables."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import pytest

from pyrkt.cli import main as cli
from pyrkt.cli.commands import completion
from pyrkt.cli.flags import PULL_POLICY_ALIASES, FlagSet
from pyrkt.errors import UsageError
from pyrkt.fetch.policy import policy_from_flags


def split(*argv: str) -> tuple[dict[str, object], list[str], list[str]]:
    return cli.split_command(list(argv), cli.FlagSet(cli.GLOBAL_FLAGS))


@pytest.mark.parametrize(("argv", "words", "args"), [
    (["--net=host", "run", "IMG"], ["run"], ["--net=host", "IMG"]),
    (["--pull-policy", "new", "fetch", "IMG"], ["fetch"], ["--pull-policy", "new", "IMG"]),
    (["--no-store", "fetch", "IMG"], ["fetch"], ["--no-store", "IMG"]),  # a command name is never a value
    (["--pretty-print=false", "image", "--full", "cat-manifest", "X"], ["image", "cat-manifest"],
     ["--pretty-print=false", "--full", "X"]),
    (["run", "IMG", "--exec=/bin/sh"], ["run"], ["IMG", "--exec=/bin/sh"]),
])
def test_a_commands_flags_before_its_name_go_to_it_first(argv: list[str], words: list[str], args: list[str]) -> None:
    _, got_words, got_args = split(*argv)
    assert (got_words, got_args) == (words, args)


def test_global_flags_before_the_command_are_still_global() -> None:
    values, words, args = split("--dir", "/d", "--net=none", "--debug", "run", "IMG")
    assert (values["dir"], values["debug"], words, args) == ("/d", True, ["run"], ["--net=none", "IMG"])


def test_a_flag_the_command_does_not_know_is_refused_by_it() -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(UsageError, match="unknown flag: --net"):
        cli.dispatch(["--net=host", "version"], out, err)
    with pytest.raises(UsageError, match="flags but no command"):
        cli.dispatch(["--net=host"], out, err)


def test_rkts_store_flags_map_onto_the_pull_policy() -> None:
    assert policy_from_flags("new") == "new"
    assert policy_from_flags("new", store_only=True) == "never"
    assert policy_from_flags("never", no_store=True) == "update"
    with pytest.raises(UsageError, match="both --store-only and --no-store specified"):
        policy_from_flags("new", store_only=True, no_store=True)


def test_deprecated_spellings_are_taken_with_rkts_warning_and_hidden_from_help() -> None:
    fs = FlagSet(PULL_POLICY_ALIASES)
    values, _ = fs.parse(["--store-only"])
    assert values["store_only"] is True
    assert fs.notes == ["Flag --store-only has been deprecated, please use --pull-policy=never"]
    assert fs.help_lines() == []


def test_flags_pyrkt_does_not_take_are_refused_saying_what_replaced_them() -> None:
    with pytest.raises(UsageError, match="--cpuprofile writes a profile of rkt's Go runtime"):
        FlagSet(cli.GLOBAL_FLAGS).parse(["--cpuprofile=x"])


def test_completion_words_come_from_the_command_and_flag_tables() -> None:
    table = completion.command_table()
    assert "run" in table[""][0] and "image" in table[""][0] and "--dir=" in table[""][1]
    assert set(table["image"][0]) >= {"rm", "cat-manifest", "export", "extract", "render", "list"}
    assert "--net" in table["run"][1] and "--exec=" in table["run"][1]
    assert "--pull-policy=" in table["fetch"][1] and "--no-store" not in table["fetch"][1]  # deprecated: hidden
    assert "--pretty-print" in table["image cat-manifest"][1]
    assert "export" in table[""][0] and {"--app=", "--format=", "--overwrite"} <= set(table["export"][1])


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_subcommands_and_flags() -> None:
    script = completion.bash_script(completion.command_table())

    def complete(*words: str) -> list[str]:
        probe = (f"{script}\nCOMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; _pyrkt; "
                 'printf "%s\\n" "${COMPREPLY[@]}"; complete -p pyrkt >&2')
        p = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True)
        assert p.stderr.strip() == "complete -F _pyrkt pyrkt"
        return p.stdout.split()

    assert complete("pyrkt", "im") == ["image"]
    assert complete("pyrkt", "--dir", "/x", "image", "r") == ["rm", "render"]
    assert complete("pyrkt", "fetch", "--pull") == ["--pull-policy="]
    assert complete("pyrkt", "run", "--net", "img", "--exe") == ["--exec="]
    assert complete("pyrkt", "app", "st") == ["start", "stop", "status"]
    assert complete("pyrkt", "app", "add", "--mnt") == ["--mnt-volume="]


def test_zsh_script_defines_the_completion_for_every_command() -> None:
    script = completion.zsh_script(completion.command_table())
    assert script.startswith("#compdef pyrkt\n")
    for name in cli.COMMANDS:
        assert f'"{name}") cmds=(' in script


def test_completion_refuses_other_shells(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "fish"]) == 254
    assert "completion needs one shell: bash or zsh" in capsys.readouterr().err
    assert sys.modules.get("pyrkt.cli.commands.completion") is not None
