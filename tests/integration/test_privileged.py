"""A privileged app (`run IMAGE --privileged`) on the real kernel, beside an ordinary one in the
same pod: what each sees of its capabilities, seccomp, /sys and the masked /proc paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, fetched_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

# one line per app: name, CapEff, CapBnd, Seccomp, NoNewPrivs, /sys's first mount option, how
# many mounts there are at /proc/kcore (a mask) and at /proc/sys (read-only), whether the host's
# /dev/kmsg can be opened (made where the app has none)
REPORT = ("mknod /dev/kmsg c 1 11 2>/dev/null; echo \"$N $(awk '/^CapEff/{print $2}' /proc/self/status) $(awk '/^CapBnd/{print $2}' /proc/self/status)"
          " $(awk '/^Seccomp:/{print $2}' /proc/self/status) $(awk '/^NoNewPrivs/{print $2}' /proc/self/status)"
          " $(awk '$2==\"/sys\"{split($4,o,\",\"); print o[1]}' /proc/mounts)"
          " $(awk '$2==\"/proc/kcore\"||$2==\"/proc/sys\"' /proc/mounts | wc -l)"
          " $( (: < /dev/kmsg) 2>/dev/null && echo kmsg || echo no-kmsg)\"")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    with fetched_image(tmp_path_factory.mktemp("privileged"), cmd=("sh", "-c", "echo hello")) as env:
        yield env


def own(field: str) -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith(field + ":"))


def test_the_privileged_app_alone_has_every_cap_no_filter_unmasked_proc_and_sys_and_the_host_devices(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none",
            image, "--name=admin", "--privileged", "--environment=N=admin", "--exec=/bin/sh", "--", "-c", REPORT, "---",
            image, "--name=web", "--environment=N=web", "--exec=/bin/sh", "--", "-c", REPORT, timeout=60)
    assert r.code == 0, r
    seen = {line.split()[0]: line.split()[1:] for line in r.out.splitlines() if line.split()[:1] in (["admin"], ["web"])}
    every = own("CapBnd")
    assert seen["admin"] == [every, every, "0", "0", "rw", "0", "kmsg"], r
    cap_eff, cap_bnd, mode, nnp, sys_opt, masks, kmsg = seen["web"]
    assert cap_eff == cap_bnd != every and (mode, nnp, sys_opt) == ("2", "1", "ro") and int(masks) >= 1, r
    assert kmsg == "no-kmsg", r


def test_privileged_takes_no_other_privilege_flag(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--privileged", "--caps-retain=CAP_KILL")
    assert r.code == 254
    assert r.err.strip().endswith("--privileged gives every capability and no seccomp filter: it takes no "
                                  "--caps-retain"), r


def test_privileged_is_refused_with_private_users(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--private-users", image, "--privileged")
    assert r.code == 254, r
    assert "a privileged app cannot run in a pod with --private-users" in r.err, r
