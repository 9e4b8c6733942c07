"""An app's stdio modes (rkt's ``--stdin``/``--stdout``/``--stderr``, kept as the app's
``coreos.com/rkt/stage2/*`` annotations in the pod manifest) and ``attach --mode``.

``log`` (stdout and stderr, the default) goes to the app's log file through pod init; ``null``
is /dev/null (stdin's default); ``stream`` and ``tty`` make the app attachable: a helper
process of the pod (``pyrkt.stage1.iomux``) holds the streams, or the pty's master, and
serves them on unix sockets in ``iottymux_dir(app)``. Pure: no I/O here.
"""

from __future__ import annotations

from pyrkt.errors import UsageError, quote
from pyrkt.model.values import Value

STREAMS = ("stdin", "stdout", "stderr")
ANNOTATIONS = {s: f"coreos.com/rkt/stage2/{s}" for s in STREAMS}
MODES = {"stdin": ("null", "stream", "tty"), "stdout": ("log", "null", "stream", "tty"),
         "stderr": ("log", "null", "stream", "tty")}
DEFAULTS = {"stdin": "null", "stdout": "log", "stderr": "log"}
ATTACHABLE = ("stream", "tty")
IOTTYMUX_DIR = "stage1/rootfs/rkt/iottymux"  # in the pod dir, as rkt's /rkt/iottymux of stage1
ENDPOINTS = "endpoints"  # the JSON of what an app serves (rkt's iottymux status file)


def iottymux_dir(app: str) -> str:
    return f"{IOTTYMUX_DIR}/{app}"


def socket_name(endpoint: str) -> str:
    return f"sock-{endpoint}"


def check_mode(stream: str, mode: str) -> str:
    """``mode`` if ``stream`` may take it, else rkt's error ("invalid stdin mode \"x\"")."""
    if mode not in MODES[stream]:
        raise UsageError(f"invalid {stream} mode {quote(mode)} (want {', '.join(MODES[stream])})")
    return mode


class Stdio(Value):
    stdin: str = "null"
    stdout: str = "log"
    stderr: str = "log"

    @classmethod
    def from_annotations(cls, annotations: tuple[tuple[str, str], ...], where: str = "") -> Stdio:
        """The modes an app's annotations give (rkt's "interactive" is ``--interactive``'s, not
        taken here); a bad one is a one-line error naming ``where``."""
        given = dict(annotations)
        modes = dict(DEFAULTS)
        for s in STREAMS:
            value = given.get(ANNOTATIONS[s])
            if value is None:
                continue
            try:
                modes[s] = check_mode(s, value)
            except UsageError as e:
                raise UsageError(f"{where}{e}") from None
        return cls(**modes)

    def is_default(self) -> bool:
        return (self.stdin, self.stdout, self.stderr) == ("null", "log", "log")

    def tty(self) -> bool:
        return "tty" in (self.stdin, self.stdout, self.stderr)

    def attachable(self) -> bool:
        return any(m in ATTACHABLE for m in (self.stdin, self.stdout, self.stderr))

    def endpoints(self) -> tuple[str, ...]:
        """What the app serves, in rkt's names: "tty" for its pty (whatever streams use it),
        then each stream in stream mode."""
        out = ["tty"] if self.tty() else []
        return (*out, *(s for s in STREAMS if getattr(self, s) == "stream"))


def mode_annotations(stdin: str, stdout: str, stderr: str) -> list[tuple[str, str]]:
    """The annotations of the modes given on the command line ("" for one not given), checked."""
    return [(ANNOTATIONS[s], check_mode(s, m)) for s, m in zip(STREAMS, (stdin, stdout, stderr), strict=True) if m]


class AttachMode(Value):
    """What ``attach --mode`` asks for: ``list`` only prints the endpoints; otherwise the tty's
    input and output and the streams to carry ("auto": all the app serves)."""

    action: str  # "list", "auto" or "custom"
    tty_in: bool = False
    tty_out: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False

    @classmethod
    def parse(cls, text: str) -> AttachMode:
        """rkt's ``--mode``: ``list``, ``auto`` (or empty), or a comma-separated list of
        ``tty``, ``tty-in``, ``tty-out``, ``stdin``, ``stdout``, ``stderr``; tty and streams
        cannot be mixed."""
        if text == "list":
            return cls("list")
        if text in ("auto", ""):
            return cls("auto")
        chosen = {"tty_in": False, "tty_out": False, "stdin": False, "stdout": False, "stderr": False}
        for e in text.split(","):
            if e == "tty":
                chosen["tty_in"] = chosen["tty_out"] = True
            elif e in ("tty-in", "tty-out", *STREAMS):
                chosen[e.replace("-", "_")] = True
            else:
                raise UsageError(f"invalid attach mode: unknown endpoint {quote(e)}")
        tty = chosen["tty_in"] or chosen["tty_out"]
        if tty and (chosen["stdin"] or chosen["stdout"] or chosen["stderr"]):
            raise UsageError(f"invalid attach mode: incompatible endpoints {quote(text)}, "
                             "cannot simultaneously attach TTY and streams")
        return cls("custom", **chosen)

    def wanted(self, served: tuple[str, ...]) -> tuple[str, ...]:
        """The endpoints to connect to; one asked for but not served is an error (rkt skipped it
        silently)."""
        if self.action == "auto":
            return served
        asked = ["tty"] if self.tty_in or self.tty_out else []
        asked += [s for s in STREAMS if getattr(self, s)]
        missing = [e for e in asked if e not in served]
        if missing:
            raise UsageError(f"the app does not serve {', '.join(missing)} "
                             f"(it serves {', '.join(served)})")
        return tuple(asked)
