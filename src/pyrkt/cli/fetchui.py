"""The CLI's ``FetchUI``: download progress, status lines and notices on a terminal, and the
yes/no question of a key review on stdin. Made by the commands that fetch and passed down
through stage0 to fetch, which itself never touches stdin, stdout or stderr."""

from __future__ import annotations

import sys

from pyrkt.errors import UsageError
from pyrkt.fetch.ui import FetchUI

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from pyrkt.fetch.progress import ProgressDisplay


def _is_tty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (AttributeError, ValueError):
        return False


class TerminalUI(FetchUI):
    """Writes to ``out`` (stderr for fetches; stdout for ``pyrkt trust``, whose review is its
    output) and reads answers from ``stdin``. ``quiet``: no progress display and no status
    lines; those are shown on a terminal only anyway. ``ask_without_tty``: ask even when stdin
    and ``out`` are not a terminal (``pyrkt trust`` reads its answers from a pipe too).
    ``debug`` (``--debug``): rkt's debug lines on where each image comes from, and the status
    lines, wherever ``out`` goes."""

    def __init__(self, out: TextIO, *, stdin: TextIO | None = None, quiet: bool = False,
                 ask_without_tty: bool = False, debug: bool = False) -> None:
        self.out = out
        self.show_debug = debug
        self.stdin = stdin if stdin is not None else sys.stdin
        self.quiet = quiet
        self.ask_without_tty = ask_without_tty

    def progress(self) -> ProgressDisplay | None:
        if self.quiet or not _is_tty(self.out):
            return None
        from pyrkt.fetch.progress import Progress

        return Progress(self.out)

    def status(self, message: str) -> None:
        if self.show_debug or (not self.quiet and _is_tty(self.out)):
            self._write("image: " + message)

    def debug(self, message: str) -> None:
        if self.show_debug:
            self._write("image: " + message)

    def notice(self, message: str) -> None:
        self._write(message)

    def can_ask(self) -> bool:
        if self.ask_without_tty:
            return self.stdin is not None and not self.stdin.closed
        return _is_tty(self.stdin) and _is_tty(self.out)

    def confirm(self, question: str) -> bool:
        if self.stdin is None or self.stdin.closed:
            raise UsageError("cannot ask whether to trust the key: no stdin (use --skip-fingerprint-review)")
        if not self.can_ask():
            raise UsageError("cannot ask whether to trust the key: stdin is not a terminal "
                             "(use --trust-keys-from-https or pyrkt trust)")
        self.out.write(question)
        self.out.flush()
        answer = self.stdin.readline()
        if not answer:
            raise UsageError("cannot ask whether to trust the key: stdin is closed (use --skip-fingerprint-review)")
        return answer.strip().lower() in ("y", "yes")

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
