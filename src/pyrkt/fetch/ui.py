"""How a fetch talks to a person, if there is one: ``FetchUI``, the callbacks its caller passes
down (a progress display, status lines, notices, a yes/no question). The base class is the
headless default for callers without a terminal (an API or CRI server): no display, status and
notices and debug lines dropped, nothing ever asked. The CLI's terminal version is ``pyrkt.cli.fetchui``.
"""

from __future__ import annotations

from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.fetch.progress import ProgressDisplay


class FetchUI:
    """The headless default; a subclass overrides what its caller can show or ask."""

    def progress(self) -> ProgressDisplay | None:
        """A display for the downloads of one image (closed with ``close()`` after), or None."""
        return None

    def status(self, message: str) -> None:
        """A line on what the fetch is doing (rkt's ``image: searching for …``): chatter, may be dropped."""

    def debug(self, message: str) -> None:
        """Where the image comes from, as rkt's ``--debug`` lines (``using image from local store
        for image name …``, ``using image from file …``): shown only when asked for."""

    def notice(self, message: str) -> None:
        """A line the user must be able to see afterwards (which keys were trusted, and why)."""

    def can_ask(self) -> bool:
        """Whether ``confirm`` can ask anyone."""
        return False

    def confirm(self, question: str) -> bool:
        """Ask ``question`` (``… (yes/no)? ``); True for yes. A UsageError when no one can be asked."""
        raise UsageError(f"cannot ask {question.strip()!r}: there is no terminal")


HEADLESS = FetchUI()
