"""The `pyrkt` command: global flags, a lazy command registry, errors -> exit codes.

This is the one place that turns a PyrktError into ``pyrkt: <message>`` and exit 254. Command
modules are imported only when chosen, so `pyrkt list` never pays for `pyrkt fetch`.
"""

from __future__ import annotations

try:
    import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers, loaded at start-up
except ImportError:  # an interpreter without it (tests/unit/test_private_modules.py)
    import signal as _signal  # type: ignore[no-redef]
import gc
import os
import sys

from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.cli.output import printable
from pyrkt.config import Config, ConfigDirs, data_dir_for, parse_insecure_options
from pyrkt.errors import EXIT_CODE, PyrktError, UsageError, quote
from pyrkt.model.values import Value, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, TextIO

GLOBAL_FLAGS = [
    Flag("dir", default="", help="pyrkt data directory (default: the data of paths.d, else /var/lib/pyrkt)"),
    Flag("local-config", default="/etc/pyrkt", help="local configuration directory"),
    Flag("system-config", default="/usr/lib/pyrkt", help="system configuration directory"),
    Flag("user-config", default="", help="user configuration directory"),
    Flag("debug", "bool", help="print out more debug information to stderr"),
    Flag("insecure-options", "list", help="comma-separated list of security features to disable: "
         "none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all"),
    Flag("trust-keys-from-https", "bool", help="automatically trust gpg keys fetched from https"),
    Flag("help", "bool", help="help for pyrkt"),
    *(Flag(name, refused=f"--{name} writes a profile of rkt's Go runtime; pyrkt has no such flag "
           "(python -X importtime or py-spy profile pyrkt)") for name in ("cpuprofile", "memprofile")),
]

# name -> (module under pyrkt.cli.commands, one-line summary). Order is the help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Run image(s) in a pod"),
    "prepare": ("prepare", "Prepare to run image(s) in a pod"),
    "run-prepared": ("run_prepared", "Run a prepared application pod"),
    "fetch": ("fetch", "Fetch image(s) and store them in the local store"),
    "list": ("list_pods", "List pods"),
    "status": ("status", "Check the status of a pod"),
    "logs": ("logs", "Show the output of a pod's apps"),
    "enter": ("enter", "Enter the namespaces of an app within a pod"),
    "attach": ("attach", "Attach to an app running within a pod"),
    "stop": ("stop", "Stop a pod"),
    "rm": ("rm", "Remove all files and resources associated with an exited pod"),
    "gc": ("gc", "Garbage collect pods no longer in use"),
    "cat-manifest": ("cat_manifest", "Inspect and print the pod manifest"),
    "export": ("export", "Export an app from an exited pod to an ACI or OCI archive file"),
    "image": ("", "Operate on image(s) in the local store"),
    "image list": ("image_list", "List images in the local store"),
    "image rm": ("image_rm", "Remove one or more images with the given IDs or image names from the local store"),
    "image cat-manifest": ("image_cat_manifest", "Inspect and print the image manifest"),
    "image gc": ("image_gc", "Garbage collect local store"),
    "image export": ("image_export", "Export a stored image to an ACI or OCI archive file"),
    "image extract": ("image_extract", "Extract a stored image to a directory"),
    "image render": ("image_render", "Render a stored image as pods see it (with its ACI dependencies) to a directory"),
    "image verify": ("image_verify", "Verify stored images and repair their unpacked layers"),
    "app": ("", "Operate on apps of a mutable pod (app sandbox)"),
    "app sandbox": ("app_sandbox", "Start an empty mutable pod, for apps added later"),
    "app add": ("app_add", "Add an app to a mutable pod"),
    "app start": ("app_start", "Start an app of a mutable pod"),
    "app stop": ("app_stop", "Stop an app of a mutable pod"),
    "app rm": ("app_rm", "Remove an app from a mutable pod"),
    "app list": ("app_list", "List the apps of a pod"),
    "app status": ("app_status", "Show the status of an app of a pod"),
    "app exec": ("app_exec", "Run a command in a running app of a pod"),
    "trust": ("trust", "Trust a key for image verification"),
    "api-service": ("api_service", "Run API service (experimental)"),
    "metadata-service": ("metadata_service", "Run metadata service"),
    "cri": ("cri", "Serve the Kubernetes CRI (runtime.v1) on a unix socket (experimental)"),
    "config": ("config", "Print the configuration merged from the config dirs, as JSON"),
    "version": ("version", "Print the version and exit"),
    "completion": ("completion", "Output shell completion code for bash or zsh"),
}


class Context(Value, frozen=False):
    """What every command gets: the configuration and where to write."""

    config: Config
    global_flags: FlagSet
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def debug(self, message: str) -> None:
        if self.config.debug:
            self.stderr.write(f"pyrkt: {printable(message)}\n")

    def warn(self, message: str) -> None:
        self.stderr.write(f"pyrkt: {printable(message)}\n")

    def require_root(self) -> None:
        if os.geteuid() != 0:
            raise PyrktError("cannot run as unprivileged user")

    def parse(self, flags: list[Flag], args: list[str], *, interspersed: bool = True) -> tuple[dict[str, Any], list[str]]:
        """Parse a command's flags, accepting the global flags among them as cobra does."""
        fs = FlagSet(flags + self.global_flags.flags)
        values, rest = fs.parse(args, interspersed=interspersed)
        self.report(fs)
        self.apply_globals(values)
        return values, rest

    def report(self, fs: FlagSet) -> None:
        """Say which deprecated flag spellings were used, as rkt (cobra) did."""
        for note in fs.notes:
            self.warn(note)

    def apply_globals(self, values: dict[str, Any]) -> None:
        """Fold global flags given after the command name into the config."""
        base = self.global_flags.defaults()
        changed = {k: v for k, v in values.items() if k in base and v != base[k]}
        if changed:
            self.config = merge_config(self.config, changed)


def config_from_flags(values: dict[str, Any]) -> Config:
    insecure: frozenset[str] = frozenset()
    for text in values["insecure_options"]:
        insecure |= parse_insecure_options(text)
    dirs = ConfigDirs(system=values["system_config"], local=values["local_config"], user=values["user_config"] or None)
    data_dir, source = data_dir_for(values["dir"], dirs)
    return Config(
        data_dir=data_dir,
        data_dir_source=source,
        dirs=dirs,
        debug=values["debug"],
        insecure=insecure,
        trust_keys_from_https=values["trust_keys_from_https"],
    )


def merge_config(config: Config, changed: dict[str, Any]) -> Config:
    updates: dict[str, Any] = {}
    dirs = {name: changed[f"{name}_config"] for name in ("system", "local", "user") if f"{name}_config" in changed}
    if dirs:
        if "user" in dirs:
            dirs["user"] = dirs["user"] or None
        updates["dirs"] = config.dirs.replace(**dirs)
    if "dir" in changed or (dirs and config.data_dir_source != "--dir"):  # paths.d of the new dirs
        flag = changed.get("dir") or ""
        updates["data_dir"], updates["data_dir_source"] = data_dir_for(flag, updates.get("dirs", config.dirs))
    if "debug" in changed:
        updates["debug"] = changed["debug"]
    if "trust_keys_from_https" in changed:
        updates["trust_keys_from_https"] = changed["trust_keys_from_https"]
    if "insecure_options" in changed:
        extra: frozenset[str] = frozenset()
        for text in changed["insecure_options"]:
            extra |= parse_insecure_options(text)
        updates["insecure"] = config.insecure | extra
    return config.replace(**updates)


def usage(out: TextIO, prefix: str = "") -> None:
    out.write("Usage:\n  pyrkt [global flags] <command> [flags] [args]\n\nCommands:\n")
    for name, (_, summary) in COMMANDS.items():
        if name.startswith(prefix) and (" " in name) == bool(prefix):
            out.write(f"  {name:<20} {summary}\n")
    out.write("\nGlobal flags:\n" + "\n".join(FlagSet(GLOBAL_FLAGS).help_lines()) + "\n")


def command_help(out: TextIO, name: str, module: Any) -> None:
    out.write(f"{COMMANDS[name][1]}\n\nUsage:\n  {getattr(module, 'USAGE', 'pyrkt ' + name)}\n")
    flags = getattr(module, "FLAGS", [])
    if flags:
        out.write("\nFlags:\n" + "\n".join(FlagSet(flags).help_lines()) + "\n")


def _is_command(words: list[str], word: str) -> bool:
    """Whether ``word`` names a command where ``words`` (the command words so far) leave off."""
    if not words:
        return word in COMMANDS or word == "help"
    return words in (["image"], ["app"]) and f"{words[0]} {word}" in COMMANDS


def split_command(argv: list[str], gfs: FlagSet) -> tuple[dict[str, Any], list[str], list[str]]:
    """Global flag values, the command words (``["image", "rm"]``) and the command's arguments.

    As cobra does for rkt, a command's own flags may come before its name (``pyrkt --net=host
    run IMG``): they go to the command ahead of its other arguments. Such a flag written
    ``--flag value`` takes the next word as its value unless that word names a command."""
    values = gfs.defaults()
    words: list[str] = []
    early: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            continue
        if arg.startswith("--"):
            name, eq, _ = arg[2:].partition("=")
            if name in gfs.by_name:
                i = gfs.take(values, arg, argv, i)
                continue
            early.append(arg)
            if not eq and i < len(argv) and not argv[i].startswith("-") and not _is_command(words, argv[i]):
                early.append(argv[i])
                i += 1
            continue
        if arg.startswith("-") and arg != "-":
            early.append(arg)
            continue
        words.append(arg)
        if words not in (["image"], ["app"]):
            break
    return values, words, early + argv[i:]


def dispatch(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    gfs = FlagSet(GLOBAL_FLAGS)
    values, words, args = split_command(argv, gfs)
    flags = args[:args.index("--")] if "--" in args else args  # after it: an app's or a command's own
    wants_help = values["help"] or "--help" in flags or "-h" in flags
    if not words:
        if args and not wants_help:
            raise UsageError(f"flags but no command: {' '.join(args)} (see pyrkt --help)")
        usage(stdout if wants_help else stderr)
        return 0 if wants_help else EXIT_CODE
    name = " ".join(words)
    if name == "help":
        usage(stdout)
        return 0
    if name in ("image", "app"):
        usage(stdout if wants_help else stderr, prefix=name + " ")
        return 0 if wants_help else EXIT_CODE
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r} (see pyrkt --help)")
    if name not in GC_OFF_COMMANDS:
        gc.enable()  # run_and_exit turned it off for the start-up; this command may run long
    module_name = f"pyrkt.cli.commands.{COMMANDS[name][0]}"
    __import__(module_name)  # importlib.import_module would import importlib and warnings too
    module = sys.modules[module_name]
    if wants_help:
        command_help(stdout, name, module)
        return 0
    ctx = Context(config=config_from_flags(values), global_flags=gfs, stdout=stdout, stderr=stderr)
    code = module.run(ctx, args)
    return int(code or 0)


# The hot commands, which run with the cyclic garbage collector off (run_and_exit): their
# imports create ~50k objects, whose collections cost ~1.5 ms, and a collection in pod init,
# a fork of `run`, would write to (and so copy) pages it shares with its parent. What they
# allocate after is bounded: `run` then waits for its pod; pod init turns the collector on once
# its apps have started, and so does an image fetch (stage0.images), both after gc.freeze(),
# since the collector's first pass would otherwise walk every object allocated since the start.
GC_OFF_COMMANDS = frozenset({"run", "run-prepared", "prepare", "list", "status", "version"})


def run_and_exit() -> None:
    """The console entry point: run, flush, and leave without the interpreter's teardown
    (freeing every module costs ~10 ms that a short command should not pay). The collector is
    off until ``dispatch`` knows the command (``GC_OFF_COMMANDS``). The launcher left SIGINT
    at the kernel's default while pyrkt loaded; from here a ^C is Python's KeyboardInterrupt
    (``interrupt``), which ends the command with 130, also while an error line or the output is
    being written."""
    gc.disable()
    if _signal.getsignal(_signal.SIGINT) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGINT, interrupt)
    try:
        code = main()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
    except KeyboardInterrupt:
        code = 130
    os._exit(code)


# where importlib drops a module's lock (_bootstrap is frozen; its module is _frozen_importlib)
LOCK_CALLBACK = ("<frozen importlib._bootstrap>", "_get_module_lock.<locals>.cb")


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT's handler: Python's own (KeyboardInterrupt), except in the weakref callback by
    which the import system drops a module's lock, where CPython would print the exception as
    "ignored" and go on as if no ^C came. There the ^C is put off for a millisecond (SIGALRM,
    to this handler), by when the callback has returned, and then raised again as SIGINT, for
    whatever handles it by then (a foreground `run` passes it to its pod)."""
    if frame is not None and (frame.f_code.co_filename, frame.f_code.co_qualname) == LOCK_CALLBACK:
        _signal.signal(_signal.SIGALRM, interrupt)
        _signal.setitimer(_signal.ITIMER_REAL, 0.001)
        return
    if signum == _signal.SIGALRM:
        _signal.raise_signal(_signal.SIGINT)
        return
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return dispatch(args, sys.stdout, sys.stderr)
    except PyrktError as err:
        sys.stdout.flush()
        sys.stderr.write(f"pyrkt: {printable(str(err))}\n")  # one line, whatever it quotes
        if err.hint and "--debug" in args:
            sys.stderr.write(f"pyrkt: hint: {printable(err.hint)}\n")
        return EXIT_CODE
    except KeyboardInterrupt:
        return 130
    except RuntimeError as err:
        if isinstance(err.__cause__, KeyboardInterrupt):  # a ^C in a __set_name__, which class creation wraps
            return 130
        raise
    except BrokenPipeError:
        return 0
    except OSError as err:  # what no command turned into its own line: still one line, never a traceback
        sys.stdout.flush()
        if "--debug" in args:
            import traceback

            traceback.print_exc()
        where = " ".join(quote(f if isinstance(f, str) else os.fsdecode(f) if isinstance(f, bytes) else str(f))
                         for f in (err.filename, err.filename2) if f is not None)
        why = err.strerror or str(err)
        hint = " (run as root)" if isinstance(err, PermissionError) and os.geteuid() != 0 else ""
        sys.stderr.write(f"pyrkt: {printable(why)}{': ' + printable(where) if where else ''}{hint}\n")
        return EXIT_CODE
