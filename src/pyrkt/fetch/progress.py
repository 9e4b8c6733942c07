"""The download progress display of ``docker://`` pulls, on a terminal's stderr.

``Progress`` is fed by the registry client's download threads (``add`` a layer with its size,
``advance`` it by the bytes received, ``finish`` it) and redraws its lines in place with ANSI
cursor moves, at most once per ``interval`` seconds, plus once at ``close``. ``render`` is the
pure part: the lines for a state at a moment. ``for_stream`` gives no display at all when the
stream is not a terminal. Standard library only: this module is imported on every pull.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TextIO

INTERVAL = 0.1   # seconds between two redraws at most ten times a second
DIGEST_HEX = 12  # hex digits of a layer's digest shown
ESC = "\x1b["


class ProgressSink(Protocol):
    """What the downloader reports to; ``key`` is a blob's digest."""

    def add(self, key: str, total: int) -> None: ...
    def advance(self, key: str, n: int) -> None: ...
    def finish(self, key: str) -> None: ...


class ProgressDisplay(ProgressSink, Protocol):
    """A sink shown to someone: closed once the image's downloads are over."""

    def close(self) -> None: ...


@dataclass(slots=True)
class LayerState:
    """One download: ``started`` (monotonic seconds) once a byte came, ``ended`` once verified."""

    key: str
    total: int
    done: int = 0
    started: float | None = None
    ended: float | None = None


def short_digest(key: str) -> str:
    return key.partition(":")[2][:DIGEST_HEX] or key[:DIGEST_HEX]


def human_bytes(n: float) -> str:
    """Bytes in decimal units, as registries and ``docker pull`` show them: ``12.3 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _rate(done: int, since: float | None, until: float) -> float | None:
    if since is None or until - since <= 0 or done <= 0:
        return None
    return done / (until - since)


def render(layers: Sequence[LayerState], now: float, started: float) -> list[str]:
    """The display's lines: one per layer (digest, bytes done/total, rate or state), then the
    total (bytes, average rate since ``started``, time left at that rate)."""
    lines = []
    for layer in layers:
        amount = f"{human_bytes(layer.done):>9} / {human_bytes(layer.total):<9}"
        if layer.ended is not None:
            state = "done"
        elif layer.started is None:
            state = "waiting"
        else:
            rate = _rate(layer.done, layer.started, now)
            state = f"{human_bytes(rate)}/s" if rate is not None else ""
        lines.append(f"{short_digest(layer.key)}  {amount}  {state}".rstrip())
    done = sum(layer.done for layer in layers)
    total = sum(layer.total for layer in layers)
    rate = _rate(done, started, now)
    line = f"{'total':<{DIGEST_HEX}}  {human_bytes(done):>9} / {human_bytes(total):<9}"
    if rate is not None:
        line += f"  {human_bytes(rate)}/s"
        if done < total:
            line += f"  {human_duration((total - done) / rate)} left"
        else:
            line += f"  in {human_duration(now - started)}"
    lines.append(line.rstrip())
    return lines


class Progress:
    """A thread-safe progress display writing to ``stream`` (a terminal)."""

    def __init__(self, stream: TextIO, *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.width = width or _width(stream)
        self.lock = threading.Lock()
        self.layers: dict[str, LayerState] = {}
        self.started = clock()
        self.last_draw: float | None = None
        self.drawn = 0  # lines on screen from the last draw
        self.closed = False

    @classmethod
    def for_stream(cls, stream: TextIO) -> Progress | None:
        """A display on ``stream`` if it is a terminal, else None (nothing is shown)."""
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream) if tty else None

    def add(self, key: str, total: int) -> None:
        with self.lock:
            if not self.layers:
                self.started = self.clock()  # the total's rate is of the downloads, not what came before
            if key not in self.layers:
                self.layers[key] = LayerState(key, max(total, 0))
            self._maybe_draw()

    def advance(self, key: str, n: int) -> None:
        with self.lock:
            layer = self.layers.get(key)
            if layer is None:
                return
            if layer.started is None:
                layer.started = self.clock()
            layer.done += n
            self._maybe_draw()

    def finish(self, key: str) -> None:
        with self.lock:
            layer = self.layers.get(key)
            if layer is not None and layer.ended is None:
                layer.ended = self.clock()
                layer.done = max(layer.done, layer.total)
            self._maybe_draw()

    def close(self) -> None:
        """Draw the final state once (if anything was added) and leave the cursor below it."""
        with self.lock:
            if not self.closed and self.layers:
                self._draw(self.clock())
            self.closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _maybe_draw(self) -> None:
        now = self.clock()
        if self.closed or (self.last_draw is not None and now - self.last_draw < self.interval):
            return
        self._draw(now)

    def _draw(self, now: float) -> None:
        self.last_draw = now
        lines = render(list(self.layers.values()), now, self.started)
        out = [f"{ESC}{self.drawn}F"] if self.drawn else []  # back to the first line drawn before
        out += [f"{ESC}2K{line[:self.width - 1]}\n" for line in lines]
        self.drawn = len(lines)
        try:
            self.stream.write("".join(out))
            self.stream.flush()
        except (OSError, ValueError):
            self.closed = True  # the terminal went away: stop drawing, keep downloading


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
