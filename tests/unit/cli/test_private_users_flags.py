"""rkt's --private-users and --no-overlay: pod flags of run and prepare (not of run-prepared)."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands import prepare, run, run_prepared
from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError


@pytest.mark.parametrize("flags", [run.RUN_FLAGS, prepare.OWN_FLAGS])
def test_run_and_prepare_take_both_flags_into_the_pod_request(flags: list) -> None:  # type: ignore[type-arg]
    values, apps = parse_pod_and_apps(FlagSet(flags), ["--private-users", "img", "--no-overlay"])
    req = run.pod_request(values, apps)
    assert (req.private_users, req.no_overlay) == (True, True)
    values, apps = parse_pod_and_apps(FlagSet(flags), ["img"])
    req = run.pod_request(values, apps)
    assert (req.private_users, req.no_overlay) == (False, False)


def test_run_prepared_does_not_take_them_the_pod_was_prepared_with_them() -> None:
    names = {f.name for f in run_prepared.FLAGS}
    assert "private-users" not in names and "no-overlay" not in names
    with pytest.raises(UsageError):
        FlagSet(run_prepared.FLAGS).parse(["--private-users", "UUID"])
