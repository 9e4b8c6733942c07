"""The two Kernels offer the same calls: what the recording fake accepts, the Linux one can do."""

from __future__ import annotations

from pyrkt.kernel.api import LinuxKernel
from pyrkt.kernel.recording import RecordingKernel


def public(cls: type) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")}


def test_recording_and_linux_kernels_have_the_same_calls() -> None:
    assert public(LinuxKernel) == public(RecordingKernel) - {"names"}


def test_the_recording_kernel_touches_nothing_and_keeps_order() -> None:
    k = RecordingKernel()
    path = k.make_dir("/nonexistent/root", "dev/net")
    k.mknod(path + "/tun", "c", 10, 200, 0o666)
    assert k.calls == [("make_dir", "/nonexistent/root/dev/net", 0o755),
                       ("mknod", "/nonexistent/root/dev/net/tun", "c", 10, 200, 0o666, 0, 0)]
    assert k.kind("/nonexistent/root/dev/net") == "dir" and k.kind("/nonexistent/root/x") is None
