"""A FetchUI that records the notices (the `warning:` lines) a fetch or prepare gives the user."""

from __future__ import annotations

from pyrkt.fetch.ui import FetchUI


class Notices(FetchUI):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def notice(self, message: str) -> None:
        self.lines.append(message)
