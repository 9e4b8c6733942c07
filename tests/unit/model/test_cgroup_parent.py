"""--cgroup-parent (a CRI sandbox's cgroup_parent): a cgroupfs path, checked and normalised;
the pod's cgroup below it."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.cgroup import check_parent, pod_cgroup


def test_a_cgroupfs_path_is_taken_without_its_outer_slashes() -> None:
    assert check_parent("/kubepods/burstable/pod1-2") == "kubepods/burstable/pod1-2"
    assert check_parent("kubepods/") == "kubepods"
    assert check_parent("") == ""


@pytest.mark.parametrize(("text", "why"), [
    ("kubepods-burstable-pod1.slice", "pyrkt's cgroup driver is cgroupfs"),
    ("/system.slice/x", "systemd slice"),
    ("/", "root is no parent"),
    ("/a//b", "an empty path segment"),
    ("//a", "an empty path segment"),
    ("/a/../b", "'..' path segment"),
    ("/a/./b", "'.' path segment"),
    ("/pyrkt/0123", "pyrkt's own tree"),
    ("/a\nb", "is not a cgroup name"),
    ("/k/\udcff", "'\\udcff' is not a cgroup name"),  # a non-UTF-8 byte of the command line
])
def test_what_is_no_cgroupfs_parent_is_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        check_parent(text)
    assert str(e.value).startswith(f"--cgroup-parent={text}: ") and why in str(e.value)
    assert "\n" not in str(e.value).replace(text, "")


def test_the_pods_cgroup_is_pyrkts_own_or_below_the_parent() -> None:
    assert pod_cgroup("u") == "pyrkt/u"
    assert pod_cgroup("u", "kubepods/pod1") == "kubepods/pod1/pyrkt-u"


def test_the_parent_crosses_the_runtime_config() -> None:
    config = RuntimeConfig(uuid="u", cgroup_parent="kubepods/pod1")
    assert RuntimeConfig.from_json(config.to_json()).cgroup_parent == "kubepods/pod1"
