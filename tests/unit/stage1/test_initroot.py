"""Pod init's own root, through the recording Kernel: what it mounts and links, in which order,
and that nothing of the host is bound in (the host's trees come as detached copies held by fds)."""

from __future__ import annotations

import os

from pyrkt.kernel import mount as M
from pyrkt.kernel.namespaces import CLONE_NEWNS
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.stage1 import initroot

ROOT = "/data/pods/run/u/stage1/rootfs"


def test_pod_init_moves_to_a_new_namespace_and_a_read_only_tmpfs_with_links_to_its_fds() -> None:
    k = RecordingKernel()
    pod_fd = os.open("/", os.O_PATH)
    try:
        new = initroot.enter(k, ROOT, pod_fd, os.path.join(os.path.dirname(initroot.__file__), "podinit.py"))
        for fd in [new["apps_mntns"], *new["root_fds"]]:
            os.close(fd)
    finally:
        os.close(pod_fd)
    names = k.names()
    assert names[:5] == ["unshare", "mount", "mkdir", "mount", "symlink"]
    assert k.calls[0] == ("unshare", CLONE_NEWNS)
    assert k.calls[1][1:4] == ("tmpfs", ROOT, "tmpfs")
    assert k.calls[3][1:4] == ("proc", f"{ROOT}/proc", "proc")
    assert k.calls[4] == ("symlink", f"/proc/self/fd/{pod_fd}", f"{ROOT}/pod")
    assert names[-2:] == ["mount", "pivot_root"]  # read-only, then pivot into it
    assert k.calls[-2][4] & M.MS_RDONLY and k.calls[-1] == ("pivot_root", ROOT)
    assert "bind" not in names  # a bind's source would show in mountinfo
    cloned = [c[1] for c in k.calls if c[0] == "clone_tree"]
    assert "/usr" in cloned and cloned[-1] == os.path.dirname(os.path.dirname(os.path.dirname(initroot.__file__)))
    links = {c[2] for c in k.calls if c[0] == "symlink"}
    assert {f"{ROOT}/pod", f"{ROOT}/usr", f"{ROOT}/pyrkt"} <= links
    assert new["pod"] == "/pod" and new["podinit"] == "/pyrkt/stage1/podinit.py"
