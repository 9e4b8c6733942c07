"""Pull policies, decided here and nowhere else: ``never`` uses only the store, ``new`` uses what
the store holds and fetches what it lacks, ``update`` asks the source again (an https ACI's
cache record that is still fresh, ``Cache-Control: max-age``, counts as asking).

Every source that can be found in the store before it is fetched (a docker:// reference or a
store name, an appc name, an https URL with a cache record) asks ``use_stored``; local files are
always imported and never ask.
"""

from __future__ import annotations

from pyrkt.errors import NotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.model.image import Image

PULL_POLICIES = ("never", "new", "update")


def check_pull_policy(policy: str) -> str:
    """``--pull-policy``: one of never, new and update; a UsageError otherwise."""
    if policy not in PULL_POLICIES:
        raise UsageError(f"invalid pull policy {policy!r}: want never, new or update")
    return policy


def use_stored(policy: str, stored: Image | None, *, what: str, fresh: bool = False,
               missing: str = "") -> Image | None:
    """The stored image to use instead of fetching, or None to fetch. ``stored``: what the store
    holds for the source (None: nothing that fits); ``fresh``: the source said it may be reused
    without asking (a cache record within its max-age). With ``never`` and nothing stored, a
    NotFound naming ``what`` (``missing``: why nothing fits, when something is stored)."""
    if stored is None:
        if policy == "never":
            raise NotFound(missing or f"image {what!r} not found in the store (pull policy never)")
        return None
    if policy in ("never", "new") or fresh:
        return stored
    return None


def policy_from_flags(pull_policy: str, *, store_only: bool = False, no_store: bool = False) -> str:
    """The pull policy of ``--pull-policy`` and rkt's deprecated ``--store-only`` (never) and
    ``--no-store`` (update), which win over it as in rkt; both at once is an error."""
    if store_only and no_store:
        raise UsageError("both --store-only and --no-store specified")
    if store_only:
        return "never"
    if no_store:
        return "update"
    return check_pull_policy(pull_policy)
