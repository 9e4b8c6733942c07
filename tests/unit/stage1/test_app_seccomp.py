"""Each app's seccomp filter in the default flavor: the default one, or its isolator's,
compiled once per distinct filter and cached on disk as the default one (no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyrkt.errors import UsageError
from pyrkt.kernel import seccomp
from pyrkt.model.abi import RuntimeConfig
from pyrkt.stage1 import default

REMOVE_MKDIR = (("os/linux/seccomp-remove-set", {"set": ["mkdir"], "errno": "ENOTSUP"}),)
RETAIN_READ = (("os/linux/seccomp-retain-set", {"set": ["read", "write"]}),)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    real = seccomp.compile_profile

    def counting(profile: Any) -> bytes:
        seen.append(profile)
        return real(profile)

    monkeypatch.setattr(seccomp, "compile_profile", counting)
    return seen


def test_each_distinct_filter_is_compiled_once_and_cached(tmp_path: Path, compiles: list[Any]) -> None:
    config = RuntimeConfig(uuid="u", cache_dir=str(tmp_path))
    compiled: dict[Any, bytes] = {}
    a = default.app_seccomp("/pod", config, REMOVE_MKDIR, compiled)
    b = default.app_seccomp("/pod", config, REMOVE_MKDIR, compiled)
    c = default.app_seccomp("/pod", config, RETAIN_READ, compiled)
    assert a == b and a != c and len(compiles) == 2
    d = default.app_seccomp("/pod", config, (), compiled)
    assert d == seccomp.default_bpf(str(tmp_path)) and d not in (a, c)
    # a later pod: from the cache files, nothing compiled
    assert default.app_seccomp("/pod", config, REMOVE_MKDIR, {}) == a and len(compiles) == 2


def test_no_filter_when_insecure_or_for_appcs_all(tmp_path: Path) -> None:
    insecure = RuntimeConfig(uuid="u", cache_dir=str(tmp_path), disable_seccomp=True)
    assert default.app_seccomp("/pod", insecure, REMOVE_MKDIR, {}) == b""
    config = RuntimeConfig(uuid="u", cache_dir=str(tmp_path))
    assert default.app_seccomp("/pod", config, (("os/linux/seccomp-retain-set", {"set": ["@appc.io/all"]}),), {}) == b""


def test_a_syscall_unknown_here_is_refused_at_start_too(tmp_path: Path) -> None:
    """A pod manifest written elsewhere (or by an older pyrkt) is checked again by stage1."""
    config = RuntimeConfig(uuid="u", cache_dir=str(tmp_path))
    with pytest.raises(UsageError, match="unknown syscall 'mkdirx'"):
        default.app_seccomp("/pod", config, (("os/linux/seccomp-remove-set", {"set": ["mkdirx"]}),), {})
