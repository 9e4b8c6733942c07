"""Container and sandbox stats from the cgroup accounting files pyrkt's pods and apps have:
CPU time (v1 ``cpuacct.usage``, v2 ``cpu.stat`` usage_usec) and memory (v1
``memory.usage_in_bytes``, v2 ``memory.current``; the working set is that less the inactive
file pages of ``memory.stat``, as the kubelet's cAdvisor counts it). Reading only."""

from __future__ import annotations

import os
import time

from pyrkt.api.proto import cri_pb2 as pb


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def usage(subpath: str) -> tuple[pb.CpuUsage, pb.MemoryUsage]:
    """The CPU and memory use of the cgroup ``subpath`` (a pod's, or an app's below it), in
    each hierarchy that accounts for it; fields without a file to read stay unset."""
    from pyrkt.kernel import cgroups

    now = time.time_ns()
    cpu, mem = pb.CpuUsage(timestamp=now), pb.MemoryUsage(timestamp=now)
    for h in cgroups.pod_hierarchies():
        path = os.path.join(h.mount_point, subpath)
        if not os.path.isdir(path):
            continue
        if h.version == 2:
            usec = _stat(_read(os.path.join(path, "cpu.stat"))).get("usage_usec")
            if usec is not None:
                cpu.usage_core_nano_seconds.value = usec * 1000
            current = (_read(os.path.join(path, "memory.current")) or "").strip()
            inactive = "inactive_file"
        else:
            text = (_read(os.path.join(path, "cpuacct.usage")) or "").strip()
            if text.isdigit():
                cpu.usage_core_nano_seconds.value = int(text)
            current = (_read(os.path.join(path, "memory.usage_in_bytes")) or "").strip()
            inactive = "total_inactive_file"
        if current.isdigit():
            stat = _stat(_read(os.path.join(path, "memory.stat")))
            mem.usage_bytes.value = int(current)
            mem.working_set_bytes.value = max(0, int(current) - stat.get(inactive, 0))
            if "rss" in stat or "anon" in stat:
                mem.rss_bytes.value = stat.get("total_rss", stat.get("rss", stat.get("anon", 0)))
            if "pgfault" in stat or "total_pgfault" in stat:
                mem.page_faults.value = stat.get("total_pgfault", stat.get("pgfault", 0))
                mem.major_page_faults.value = stat.get("total_pgmajfault", stat.get("pgmajfault", 0))
    return cpu, mem


def oom_kills(subpath: str) -> int:
    """How many processes the OOM killer has killed in the memory cgroup ``subpath`` (``oom_kill``
    of v1 ``memory.oom_control``, v2 ``memory.events``); 0 without one."""
    from pyrkt.kernel import cgroups

    for h in cgroups.pod_hierarchies():
        if h.version == 1 and "memory" not in h.controllers:
            continue
        name = "memory.events" if h.version == 2 else "memory.oom_control"
        count = _stat(_read(os.path.join(h.mount_point, subpath, name))).get("oom_kill")
        if count:
            return count
    return 0
