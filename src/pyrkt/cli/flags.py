"""A small parser for rkt-style flags: ``--name=value``, ``--name value``, booleans.

Kinds of flag:
    "bool"   ``--x`` or ``--x=true|false``
    "str"    ``--x=V`` or ``--x V``; the last one given wins
    "list"   repeatable ``--x=V``; values are collected in order
    "opt"    ``--x`` alone takes ``Flag.implicit``; a value needs ``=`` (``--net``, ``--wait``)

Parsing stops at the first positional argument unless ``interspersed`` is true, which is how
rkt's per-app syntax (`run IMG --exec=… -- args ---`) is handled by the run command itself.
"""

from __future__ import annotations

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TRUE_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class Flag(Value):
    name: str
    kind: str = "str"
    default: Any = None
    help: str = ""
    implicit: str = ""
    metavar: str = "VALUE"
    aliases: tuple[str, ...] = ()
    hidden: bool = False
    deprecated: str = ""  # rkt's old spelling, still taken: what to use instead (cobra's MarkDeprecated)
    refused: str = ""  # an rkt flag pyrkt does not take: the one line saying so and what replaced it

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == "list":
            return list(self.default or [])
        if self.kind == "bool":
            return bool(self.default)
        return self.default


def parse_bool(name: str, text: str) -> bool:
    try:
        return TRUE_WORDS[text.lower()]
    except KeyError:
        raise UsageError(f"invalid value {text!r} for --{name}: want true or false") from None


class FlagSet:
    """Flags of one command; ``parse`` returns (values, positionals)."""

    def __init__(self, flags: list[Flag]) -> None:
        self.flags = flags
        self.notes: list[str] = []  # deprecation warnings of the flags parsed, for the user
        self.given: set[str] = set()  # the flags the command line gave (by name), defaults or not
        self.by_name: dict[str, Flag] = {}
        for f in flags:
            self.by_name[f.name] = f
            for a in f.aliases:
                self.by_name[a] = f

    def defaults(self) -> dict[str, Any]:
        return {f.dest: f.initial() for f in self.flags}

    def parse(self, args: list[str], *, interspersed: bool = True) -> tuple[dict[str, Any], list[str]]:
        values = self.defaults()
        positionals: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                positionals.extend(args[i:])
                break
            if not arg.startswith("--") or arg == "-":
                if arg.startswith("-") and len(arg) > 1 and arg != "-":
                    raise UsageError(f"unknown shorthand flag {arg!r}: pyrkt flags are spelled --name")
                positionals.append(arg)
                if not interspersed:
                    positionals.extend(args[i:])
                    break
                continue
            i = self.take(values, arg, args, i)
        return values, positionals

    def take(self, values: dict[str, Any], arg: str, args: list[str], i: int) -> int:
        """Apply one ``--flag[=value]`` at ``args[i-1]``; returns the index after it."""
        name, eq, value = arg[2:].partition("=")
        flag = self.by_name.get(name)
        if flag is None:
            raise UsageError(f"unknown flag: --{name}")
        if flag.refused:
            raise UsageError(flag.refused)
        if flag.deprecated:
            self.notes.append(f"Flag --{name} has been deprecated, {flag.deprecated}")
        self.given.add(flag.name)
        if flag.kind == "bool":
            values[flag.dest] = parse_bool(name, value) if eq else True
            return i
        if flag.kind == "opt":
            values[flag.dest] = value if eq else flag.implicit
            return i
        if not eq:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: --{name}")
            value = args[i]
            i += 1
        if flag.kind == "list":
            values[flag.dest].append(value)
        else:
            values[flag.dest] = value
        return i

    def help_lines(self) -> list[str]:
        lines = []
        for f in self.flags:
            if f.hidden or f.deprecated or f.refused:
                continue
            spec = f"--{f.name}" if f.kind == "bool" else f"--{f.name}={f.metavar}"
            default = f" (default {shown_default(f.default)})" if f.default not in (None, "", False, [], ()) else ""
            lines.append(f"      {spec:<34} {f.help}{default}")
        return lines


def shown_default(value: Any) -> str:
    """A default as Go's flag help prints it: ``true``/``false`` for a bool, not Python's ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# rkt's deprecated spellings of --pull-policy (rkt/fetch.go, run.go, prepare.go); fetch.policy maps them.
PULL_POLICY_ALIASES = [
    Flag("store-only", "bool", deprecated="please use --pull-policy=never"),
    Flag("no-store", "bool", deprecated="please use --pull-policy=update"),
]
# rkt's deprecated per-app capability flags (rkt/run.go addIsolatorFlags): per-app flags, taken as
# --caps-retain/--caps-remove with cobra's deprecation line (cli/commands/apps.py).
CAPS_ALIASES = [
    Flag(name, deprecated=f"use --{name.replace('cap-', 'caps-')} instead") for name in ("cap-retain", "cap-remove")
]
