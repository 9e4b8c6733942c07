#!/usr/bin/env python3
"""pyrkt's start-time and memory benchmark, against crun, podman and containerd on the same image.

Times, in one run and side by side, the whole command (wall clock, median and p90 of --runs
runs after --warmup runs) of:

    pyrkt --dir=D run --net=none IMAGE --exec=/bin/true      a cached image, D a fresh data dir
    crun run                                                  an OCI bundle of the same rootfs
    podman run --rm --net=none IMAGE true                     when podman is installed

then the memory (PSS) of an idle pod's pyrkt processes, alone and ten at once, the imports of
the hot path (``python -X importtime``); then (``--only pull`` for this part alone) the pull of
a 4-layer ~55 MB ``docker://`` image from a local docker-registry by ``pyrkt fetch``, ``podman
pull`` and ``skopeo copy`` + ``umoci unpack``, each into a fresh dir; then (``--only cri``) a CRI
sandbox cycle, RunPodSandbox to RemovePodSandbox of one ``/bin/true`` container, of ``pyrkt cri``
against containerd's CRI plugin, from one gRPC client (bench/cri.py); and checks the targets.
Run as root: ``make bench``.
Everything it makes lives in one temporary directory and is removed at the end, even on
failure; processes are ended by PID; global state (a hugetlb cgroup mount for crun, podman's
lock file) is removed only when this benchmark created it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYRKT = REPO / ".venv" / "bin" / "pyrkt"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
IMAGES = REPO / "tests" / "support" / "images.py"

TARGET_MS = 40.0
TARGET_CRUN_RATIO = 4.0
TARGET_PODMAN_NET_RATIO = 0.5  # pyrkt on its default network against podman on its own
TARGET_PSS_MIB = 8.0
TARGET_LIMITS_EXTRA_MS = 2.0  # run --memory=64M --cpu=500m over the plain run, medians of one bench run
TARGET_USERNS_EXTRA_MS = 3.0  # run --private-users over the plain run's median
TARGET_PULL_PODMAN_RATIO = 0.7  # pyrkt fetch against podman pull of the same docker:// image
TARGET_PULL_SKOPEO_RATIO = 1.0  # pyrkt fetch against skopeo copy + umoci unpack
TARGET_SANDBOX_RATIO = 1.5  # app sandbox + add + start of one app against run --detach of it, medians
TARGET_VOLUMES_MS = 3.0  # pyrkt run with two volumes (host + empty) over the plain run, medians
TARGET_CRI_RATIO = 0.8  # pyrkt cri's sandbox cycle against containerd's CRI plugin's, medians
PULL_FILES = 1720  # + the busybox base layer's ~290 entries: about 2,000
PULL_DIRS = 40
PULL_UNPACKED_BYTES = 84_000_000
REGISTRY_BIN = "/usr/bin/docker-registry"
# top-level modules that must never load on the hot path: HTTP clients, progress bars, gRPC
FORBIDDEN = ("httpx", "httpcore", "h11", "h2", "requests", "urllib3", "aiohttp", "http.client",
             "grpc", "google.protobuf", "tqdm", "rich")
# commands run as a user would run them: no PYTHON* settings of the caller (such as
# PYTHONDONTWRITEBYTECODE, which would make every edited module compile on each start)
USER_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
HUGETLB = Path("/sys/fs/cgroup/hugetlb")
# paths podman creates outside its --root/--runroot/--tmpdir (and a libpod_parent cgroup in every
# hierarchy); removed at the end if they were not there before
PODMAN_GLOBALS = ("/dev/shm/libpod_lock", "/run/containers", "/var/lib/containers", "/run/crun", "/run/libpod")


@dataclass
class Timing:
    name: str
    command: str
    times_ms: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.times_ms, n=10, method="inclusive")[-1]


@dataclass
class Report:
    runs: int
    data_dir: str = ""
    timings: list[Timing] = field(default_factory=list)
    pss_one_mib: float | None = None
    pss_one_detail: list[str] = field(default_factory=list)
    pss_many_mib: float | None = None
    pods: int = 0
    net_timings: dict[str, float] = field(default_factory=dict)  # median ms per run: up, down, plugins
    forbidden: dict[str, list[str]] = field(default_factory=dict)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (PASS|FAIL|SKIP, text)
    sections: list[str] = field(default_factory=list)  # what ran: start, pull
    pull_image: dict[str, int] = field(default_factory=dict)  # layers, sizes, entries (and ref)
    pull_ref: str = ""
    pull_fs: str = ""
    pull_runs: int = 0
    pull_skipped: str = ""
    pull_timings: list[Timing] = field(default_factory=list)
    cri_skipped: str = ""
    cri_fs: str = ""
    cri_timings: list[Timing] = field(default_factory=list)
    cri_calls: dict[str, dict[str, float]] = field(default_factory=dict)  # runtime: call: median ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per command (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    ap.add_argument("--pods", type=int, default=10, help="idle pods at once for the per-pod PSS (default 10)")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds a pod idles before its PSS is read")
    ap.add_argument("--skip", action="append", default=[], choices=["crun", "podman", "memory", "pull", "cri"],
                    help="leave one part out (repeatable)")
    ap.add_argument("--only", choices=["start", "pull", "volumes", "sandbox", "cri"],
                    help="run one section only: start (start time, memory, imports) or pull (docker:// pulls); "
                         "volumes: only the two rows pyrkt run and pyrkt run volumes; sandbox: only the two rows "
                         "pyrkt run --detach and pyrkt app sandbox+add+start; cri: only pyrkt cri against "
                         "containerd's CRI plugin")
    ap.add_argument("--pull-runs", type=int, default=5, help="timed pulls per tool (default 5)")
    ap.add_argument("--pull-warmup", type=int, default=1, help="untimed pull rounds first (default 1)")
    ap.add_argument("--pull-fs", choices=["disk", "tmpfs"], default="disk",
                    help="where each pull's fresh dir is: disk (under /var/tmp, default) or a tmpfs the "
                         "benchmark mounts")
    ap.add_argument("--start-fs", choices=["disk", "tmpfs"], default="tmpfs",
                    help="where the start section's data dir, crun bundle and state and podman store (and the "
                         "CRI section's data dirs) are: a tmpfs the benchmark mounts (default) or disk (under "
                         "/var/tmp)")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "results.json",
                    help="also write the results here (default bench/out/results.json)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: pyrkt runs pods as root; run this as root", file=sys.stderr)
        return 1
    if not PYRKT.exists():
        print(f"bench: {PYRKT} is missing; run `make venv`", file=sys.stderr)
        return 1

    report = Report(runs=args.runs, pull_runs=args.pull_runs)
    work = Path(tempfile.mkdtemp(prefix="pyrkt-bench-", dir="/var/tmp"))
    try:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(remove_tree, work)
            bench_all(args, report, work, cleanup)
    except (RuntimeError, OSError, ValueError) as err:
        report.checks.append(("FAIL", f"the benchmark stopped: {err}"))
    judge(report)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(asdict(report), indent=1) + "\n")
    print(f"\nresults: {args.json}")
    return 1 if any(status == "FAIL" for status, _ in report.checks) else 0


def bench_all(args: argparse.Namespace, report: Report, work: Path, cleanup: contextlib.ExitStack) -> None:
    print(f"bench: working in {work} (removed at the end)")
    if args.only in (None, "start", "volumes", "sandbox"):
        report.sections.append("start")
        bench_start(args, report, work, cleanup)
    if args.only == "pull" or (args.only is None and "pull" not in args.skip):
        report.sections.append("pull")
        bench_pull(args, report, work, cleanup)
    if args.only == "cri" or (args.only is None and "cri" not in args.skip):
        report.sections.append("cri")
        bench_cri(args, report, work, cleanup)


def bench_start(args: argparse.Namespace, report: Report, work: Path, cleanup: contextlib.ExitStack) -> None:
    """Start time of pyrkt run against crun and podman, memory of idle pods, hot-path imports.

    Every tool's files go to one fresh dir, a tmpfs by default: on this ext4 without a journal,
    creating a file scans the inodes freed in the last minutes of its block group, so a run's
    ~40 file creations cost 5-15 ms more right after a large delete (the test suite, the
    previous benchmark) than on a quiet disk; that measures the disk's history, not the engines.
    """
    work = work / "s"  # short: podman refuses a --runroot longer than 50 characters
    work.mkdir()
    if args.start_fs == "tmpfs":
        mount_tmpfs(work, "pyrkt-bench-start", "2g", cleanup)
    layout, archive = work / "image", work / "image.tar"
    sh([VENV_PYTHON, IMAGES, "oci", layout, "--tag", "latest"])
    sh([VENV_PYTHON, IMAGES, "oci-archive", archive, "--tag", "latest"])

    data = work / "data"
    report.data_dir = f"{data} (fresh, {fs_of(work)}; crun's bundle and state and podman's store there too)"
    pyrkt = Pyrkt(data)
    cleanup.callback(pyrkt.remove_all_pods)
    image = pyrkt.check("fetch", "--full", f"oci:{layout}").strip().splitlines()[-1]
    print(f"bench: image {image} fetched into {data}")

    # a mutable pod and one app in it, against run --detach of the same app: side by side
    report.timings += time_sandbox(pyrkt, image, args)
    if args.only == "sandbox":
        return
    # with two volumes (one host, one empty), timed alternately with the plain run: side by side
    host_volume = work / "host-volume"
    host_volume.mkdir()
    volumes = (f"--volume=h,kind=host,source={host_volume}", "--volume=e,kind=empty",
               "--mount=volume=h,target=/h", "--mount=volume=e,target=/e")
    # and in its own user namespace (idmapped layers and pod files, the apps joining it), and
    # with limits (the app's cgroups get them: writes, no extra migration): the four rows in
    # turn, so drift in the machine's load (and the exited pods piling up) hits them alike
    report.timings += time_alternately([
        ("pyrkt run", lambda i: pyrkt.argv("run", "--net=none", image, "--exec=/bin/true")),
        ("pyrkt run volumes", lambda i: pyrkt.argv("run", "--net=none", *volumes, image, "--exec=/bin/true")),
        ("pyrkt run userns", lambda i: pyrkt.argv("run", "--net=none", "--private-users", image, "--exec=/bin/true")),
        ("pyrkt run limits", lambda i: pyrkt.argv("run", "--net=none", image, "--memory=64M", "--cpu=500m",
                                                  "--exec=/bin/true")),
    ], args)
    pyrkt.remove_all_pods()  # their pod dirs and cgroups, before the next rows
    if args.only == "volumes":
        return
    # the default network (ptp + portmap, the real CNI plugins): set up and torn down per run
    report.timings.append(time_command(
        "pyrkt run default", lambda i: pyrkt.argv("run", image, "--exec=/bin/true"), args))
    report.net_timings = network_timings(pyrkt, image, args)
    # the floor under it: interpreter start, the CLI's imports and nothing else
    report.timings.append(time_command("pyrkt version", lambda i: pyrkt.argv("version"), args))
    report.forbidden = import_checks(pyrkt, image, work)
    if "memory" not in args.skip:
        measure_memory(pyrkt, image, report, args)

    with hugetlb_for_crun():
        if "crun" not in args.skip and shutil.which("crun"):
            report.timings.append(bench_crun(layout, work, args))
        if "podman" not in args.skip and shutil.which("podman"):
            report.timings += bench_podman(archive, work, args)


# -- timing ----------------------------------------------------------------------------------

def time_command(name: str, argv_of: Callable[[int], list[str]], args: argparse.Namespace) -> Timing:
    return time_alternately([(name, argv_of)], args)[0]


def time_alternately(rows: list[tuple[str, Callable[[int], list[str]]]], args: argparse.Namespace) -> list[Timing]:
    """As ``time_command`` for several commands, one run of each in turn, so that drift in the
    machine's load hits them alike."""
    def runner(argv_of: Callable[[int], list[str]]) -> Callable[[int], None]:
        def run(i: int) -> None:
            proc = subprocess.run(argv_of(i), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=USER_ENV)
            if proc.returncode != 0:
                raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
        return run

    return time_steps_alternately([(name, " ".join(argv_of(0)), runner(argv_of)) for name, argv_of in rows], args)


def time_steps_alternately(rows: list[tuple[str, str, Callable[[int], None]]], args: argparse.Namespace) -> list[Timing]:
    """Rows of (name, what it runs, run i): the wall time of each step, one run of each row in
    turn; a step that raises RuntimeError leaves its row out."""
    timings = [Timing(name, command) for name, command, _ in rows]
    names = ", ".join(name for name, _, _ in rows) + (" in turn" if len(rows) > 1 else "")
    print(f"bench: timing {names}: {args.warmup} warm-up + {args.runs} runs")
    for i in range(args.warmup + args.runs):
        for timing, (name, _, step) in zip(timings, rows, strict=True):
            if timing.error:
                continue
            start = time.perf_counter()
            try:
                step(i)
            except RuntimeError as err:
                timing.error, timing.times_ms = str(err), []
                print(f"bench: {name} failed, left out: {timing.error}")
                continue
            elapsed = (time.perf_counter() - start) * 1000
            if i >= args.warmup:
                timing.times_ms.append(elapsed)
    return timings


def time_sandbox(pyrkt: Pyrkt, image: str, args: argparse.Namespace) -> list[Timing]:
    """``run --detach`` of a sleeping app, and ``app sandbox`` + ``app add`` + ``app start`` of the
    same app (the three commands timed together), one run of each in turn; each pod is stopped
    and collected, untimed, after its run."""
    app = (image, "--name=app", "--exec=/bin/sleep", "--", "600")
    detach = Timing("pyrkt run --detach", " ".join(pyrkt.argv("run", "--detach", "--net=none", *app)))
    sandbox = Timing("pyrkt app sandbox", " && ".join(" ".join(a) for a in (
        pyrkt.argv("app", "sandbox", "--net=none"), pyrkt.argv("app", "add", "UUID", *app),
        pyrkt.argv("app", "start", "UUID", "--app=app"))))
    # its three commands alone (informative: what an app costs once its sandbox runs is add + start),
    # and in the same turns a bare CLI start (`pyrkt version`), the least each of add and start can
    # cost, and the interpreter pyrkt's launcher starts, doing nothing: what any Python command costs
    steps = [Timing(f"  - app {name}", "") for name in ("sandbox", "add", "start")]
    bare = Timing("  - pyrkt version", " ".join(pyrkt.argv("version")))
    interpreter = [str(VENV_PYTHON), "-I", "-S", "-c", "pass"]
    empty = Timing("  - bare python", " ".join(interpreter))
    print(f"bench: timing {detach.name}, {sandbox.name} in turn: {args.warmup} warm-up + {args.runs} runs")

    def step(argv: list[str]) -> str:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=USER_ENV)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
        return proc.stdout.strip()

    for i in range(args.warmup + args.runs):
        for timing in (detach, sandbox):
            if timing.error:
                continue
            try:
                start = time.perf_counter()
                if timing is detach:
                    uuid = step(pyrkt.argv("run", "--detach", "--net=none", *app))
                else:
                    uuid = step(pyrkt.argv("app", "sandbox", "--net=none"))
                    marks = [time.perf_counter()]
                    step(pyrkt.argv("app", "add", uuid, *app))
                    marks.append(time.perf_counter())
                    step(pyrkt.argv("app", "start", uuid, "--app=app"))
                    marks.append(time.perf_counter())
                elapsed = (time.perf_counter() - start) * 1000
                step(pyrkt.argv("stop", "--force", uuid))
                step(pyrkt.argv("rm", uuid))
            except RuntimeError as err:
                timing.error, timing.times_ms = str(err), []
                print(f"bench: {timing.name} failed, left out: {timing.error}")
                continue
            if i >= args.warmup:
                timing.times_ms.append(elapsed)
                if timing is sandbox:
                    for sub, (a, b) in zip(steps, zip([start, *marks[:-1]], marks, strict=True), strict=True):
                        sub.times_ms.append((b - a) * 1000)
        if not sandbox.error:
            start = time.perf_counter()
            step(pyrkt.argv("version"))
            if i >= args.warmup:
                bare.times_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            step(interpreter)
            if i >= args.warmup:
                empty.times_ms.append((time.perf_counter() - start) * 1000)
    return [detach, sandbox, *(steps + [bare, empty] if sandbox.times_ms else [])]


def network_timings(pyrkt: Pyrkt, image: str, args: argparse.Namespace) -> dict[str, float]:
    """Where the default network's time goes: ``PYRKT_NET_TIMINGS=1`` makes pyrkt print one
    line per plugin call and per network up/down; medians over the runs, in ms per run."""
    runs = max(5, args.runs // 2)
    print(f"bench: timing the CNI plugins of pyrkt run on the default network: {runs} runs")
    per_run: dict[str, list[float]] = {"wall": [], "up": [], "down": [], "plugins": []}
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(pyrkt.argv("run", image, "--exec=/bin/true"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**USER_ENV, "PYRKT_NET_TIMINGS": "1"})
        per_run["wall"].append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            print(f"bench: network timing run failed: {proc.stderr.strip()[-400:]}")
            return {}
        sums = {"up": 0.0, "down": 0.0, "plugins": 0.0}
        for line in proc.stderr.splitlines():
            if line.startswith("pyrkt-net-timing: "):
                what, ms = line.removeprefix("pyrkt-net-timing: ").rsplit(" ", 1)
                key = "plugins" if what.startswith("plugin ") else what
                if key in sums:
                    sums[key] += float(ms)
        for key, value in sums.items():
            per_run[key].append(value)
    return {key: statistics.median(values) for key, values in per_run.items()}


def bench_crun(layout: Path, work: Path, args: argparse.Namespace) -> Timing:
    """crun on a bundle whose rootfs is the image's layers unpacked; config from `crun spec`."""
    bundle = work / "bundle"
    unpack_layers(layout, bundle / "rootfs")
    sh(["crun", "spec"], cwd=bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    config["root"]["readonly"] = False
    namespaces = config["linux"].setdefault("namespaces", [])
    if not any(ns["type"] == "network" for ns in namespaces):
        namespaces.append({"type": "network"})
    (bundle / "config.json").write_text(json.dumps(config))
    state = work / "crun-state"
    return time_command("crun run", lambda i: ["crun", f"--root={state}", "run", f"--bundle={bundle}",
                                               f"pyrkt-bench-{os.getpid()}-{i}"], args)


def iptables_chains() -> set[tuple[str, str]]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    table, chains = "", set()
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chains.add((table, line[1:].split()[0]))
    return chains


def remove_new_netavark_state(chains_before: set[tuple[str, str]], links_before: str) -> None:
    """What podman's default network may leave: its bridge (netavark's podman0, or cni-podman0
    when podman uses its CNI backend) and its chains (NETAVARK*, or the CNI firewall plugin's
    CNI-FORWARD and CNI-ADMIN). Only what did not exist before the benchmark is removed."""
    for bridge in ("podman0", "cni-podman0"):
        if f" {bridge}:" not in links_before:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    # netavark's chains, or the CNI firewall plugin's (podman's CNI backend)
    new = [(t, c) for t, c in iptables_chains() - chains_before
           if c.startswith("NETAVARK") or c in ("CNI-FORWARD", "CNI-ADMIN")]
    for table, chain in new:
        rules = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        for rule in rules.splitlines():
            if rule.startswith("-A ") and f"-j {chain}" in rule:
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
    for table, chain in new:
        subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
    for table, chain in new:
        subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


def bench_podman(archive: Path, work: Path, args: argparse.Namespace) -> list[Timing]:
    """podman on a throwaway store, with --net=none and on its default network (netavark's
    bridge); its global leftovers are removed if it created them."""
    base = work / "podman"
    podman = podman_argv(base)
    with podman_globals():
        try:
            return podman_runs(podman, archive, args)
        finally:
            reset_podman(base)


def podman_runs(podman: list[str], archive: Path, args: argparse.Namespace) -> list[Timing]:
    sh([*podman, "load", "-q", "-i", archive])
    image = sh([*podman, "images", "-q", "--no-trunc"]).split()[0]
    # No CAP_SYS_RESOURCE on this machine kind: podman's default rlimits are above the hard
    # limits and crun's setrlimit fails, so ask for lower ones (crun's own spec uses 1024).
    limits = ["--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096"]
    run = [*podman, "run", "--rm", "--net=none", *limits, image, "true"]
    default = [*podman, "run", "--rm", *limits, image, "true"]
    return [time_command("podman run --rm", lambda i: run, args),
            time_command("podman run default", lambda i: default, args)]


def podman_argv(base: Path) -> list[str]:
    """podman with all its state under ``base`` (root, runroot, tmpdir, network config)."""
    return ["podman", f"--root={base}/root", f"--runroot={base}/runroot", f"--tmpdir={base}/tmp",
            f"--network-config-dir={base}/net", "--cgroup-manager=cgroupfs", "--events-backend=none"]


def reset_podman(base: Path) -> None:
    """Remove the containers and store of a podman_argv(base) podman, and its mounts."""
    podman = podman_argv(base)
    subprocess.run([*podman, "rm", "--all", "--force"], capture_output=True)
    subprocess.run([*podman, "system", "reset", "--force"], capture_output=True)
    unmount_under(base)


@contextlib.contextmanager
def podman_globals() -> Iterator[None]:
    """Afterwards, remove what podman made outside its own dirs, when it was not there before."""
    leftovers = [*PODMAN_GLOBALS, *(str(h / "libpod_parent") for h in Path("/sys/fs/cgroup").iterdir())]
    existed = {p for p in [*leftovers, "/run/netns"] if os.path.lexists(p)}
    chains_before = iptables_chains()
    links_before = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    try:
        yield
    finally:
        remove_new_netavark_state(chains_before, links_before)
        if "/run/netns" not in existed and os.path.isdir("/run/netns") and not os.listdir("/run/netns"):
            # netavark's netns dir (bind-mounted on itself, as `ip netns` does), if it made it
            subprocess.run(["umount", "/run/netns"], capture_output=True)
            with contextlib.suppress(OSError):
                os.rmdir("/run/netns")
        for path in leftovers:
            if path not in existed and os.path.lexists(path):
                remove_tree(Path(path))


@contextlib.contextmanager
def hugetlb_for_crun() -> Iterator[None]:
    """crun refuses this hybrid cgroup layout unless hugetlb is mounted as its own v1 hierarchy."""
    hybrid = Path("/sys/fs/cgroup/unified").is_dir() and "hugetlb" in Path("/proc/cgroups").read_text()
    if not hybrid or os.path.ismount(HUGETLB):
        yield
        return
    made_dir = not HUGETLB.exists()
    HUGETLB.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "hugetlb", str(HUGETLB)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"bench: could not mount {HUGETLB} for crun: {proc.stderr.strip()}")
    try:
        yield
    finally:
        if proc.returncode == 0:
            subprocess.run(["umount", str(HUGETLB)], check=False)
        if made_dir:
            with contextlib.suppress(OSError):
                HUGETLB.rmdir()


# -- memory ----------------------------------------------------------------------------------

def measure_memory(pyrkt: Pyrkt, image: str, report: Report, args: argparse.Namespace) -> None:
    """PSS of the pyrkt processes of idle `sleep 600` pods: one alone, then args.pods at once."""
    sleeper = ["run", "--detach", "--net=none", image, "--exec=/bin/sleep", "--", "600"]
    print(f"bench: memory of one idle pod, then {args.pods} at once (after {args.idle:g} s idle each)")
    uuid = pyrkt.check(*sleeper).strip().splitlines()[-1]
    time.sleep(args.idle)
    procs = pyrkt_processes(pyrkt.pod_pid(uuid))
    report.pss_one_mib = sum(pss for _, pss, _ in procs) / 1024
    report.pss_one_detail = [f"pid {pid} {cmd[:70]}: {pss / 1024:.2f} MiB" for pid, pss, cmd in procs]
    pyrkt.check("stop", uuid)
    pyrkt.check("rm", uuid)

    uuids = [pyrkt.check(*sleeper).strip().splitlines()[-1] for _ in range(args.pods)]
    time.sleep(args.idle)
    total = sum(pss for u in uuids for _, pss, _ in pyrkt_processes(pyrkt.pod_pid(u)))
    report.pss_many_mib = total / 1024 / len(uuids)
    report.pods = len(uuids)
    pyrkt.check("stop", *uuids)
    pyrkt.check("rm", *uuids)


def pyrkt_processes(init_pid: int) -> list[tuple[int, int, str]]:
    """(pid, PSS in KiB, cmdline) of pod init and every Python process below it (not the apps)."""
    found, todo = [], [init_pid]
    while todo:
        pid = todo.pop()
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                       if line.startswith("Pss:"))
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        if pid == init_pid or exe.startswith("python"):
            found.append((pid, pss, cmd))
    return found


# -- imports ---------------------------------------------------------------------------------

def import_checks(pyrkt: Pyrkt, image: str, work: Path) -> dict[str, list[str]]:
    """Forbidden modules each hot-path command imports; prints `pyrkt list`'s import profile."""
    uuid_file = work / "import-check.uuid"
    commands = {
        "run --help": ["run", "--help"],
        "run": ["run", "--net=none", f"--uuid-file-save={uuid_file}", image, "--exec=/bin/true"],
        "list": ["list"],
        "status": None,  # needs the uuid of the run above
    }
    forbidden: dict[str, list[str]] = {}
    for name, cmd in commands.items():
        if cmd is None:
            cmd = ["status", uuid_file.read_text().strip()]
        modules = imported_modules(pyrkt.argv(*cmd))
        forbidden[name] = sorted({m for m, _, _ in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)})
        if name == "list":
            print("\nimports of `pyrkt list` (python -X importtime), top 12 by cumulative time:")
            print(f"  {'cumulative':>10}  {'self':>7}  module")
            for module, own, cumulative in sorted(modules, key=lambda m: -m[2])[:12]:
                print(f"  {cumulative / 1000:8.2f}ms  {own / 1000:5.2f}ms  {module}")
            print(f"  {len(modules)} modules, {sum(m[1] for m in modules) / 1000:.1f} ms importing in all\n")
    return forbidden


def imported_modules(argv: list[str]) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) for every import the command makes."""
    proc = subprocess.run([str(VENV_PYTHON), "-X", "importtime", *argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=USER_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    modules = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            own, cumulative, name = line[len("import time:"):].split("|")
            modules.append((name.strip(), int(own), int(cumulative)))
    return modules


# -- pull ------------------------------------------------------------------------------------

def pull_image_layers(files: int = PULL_FILES, total: int = PULL_UNPACKED_BYTES) -> list[dict[str, bytes]]:
    """Three layers (on top of the busybox base) of ``files`` files, ``total`` bytes in all:
    log-normal sizes, each file 47% pseudo-random bytes and the rest text from a small vocabulary,
    so gzip makes ~55 MB of the ~85 MB. Seeded: the same image (and id) every time."""
    import random

    rng = random.Random(20261129)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(files)]
    scale = total / sum(weights)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(300)]
    layers: list[dict[str, bytes]] = [{}, {}, {}]
    # keys ending in "/" are directories (tests/support/images.py)
    layers[0] = {"opt/": b"", "opt/bench/": b"", **{f"opt/bench/d{d:02d}/": b"" for d in range(PULL_DIRS)}}
    for n, weight in enumerate(weights):
        size = max(64, int(weight * scale))
        noise = size * 47 // 100
        text = bytearray()
        while len(text) < size - noise:
            text += b" ".join(rng.choices(words, k=12)) + b"\n"
        layer = 0 if n < files * 0.45 else 1 if n < files * 0.8 else 2
        layers[layer][f"opt/bench/d{n % PULL_DIRS:02d}/f{n:04d}.bin"] = rng.randbytes(noise) + bytes(text[:size - noise])
    return layers


def build_pull_image(layout: Path) -> dict[str, int]:
    """The 4-layer pull image as an OCI layout; returns its sizes (compressed, unpacked, files)."""
    sys.path.insert(0, str(REPO))
    from tests.support.images import build_oci_layout

    build_oci_layout(layout, tag="latest", cmd=("sh",), extra_layers=pull_image_layers())
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / d.replace(":", "/", 1)  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    unpacked = files = 0
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"])) as tar:
            for member in tar:
                files += 1
                unpacked += member.size
    return {"layers": len(manifest["layers"]), "compressed_bytes": sum(la["size"] for la in manifest["layers"]),
            "unpacked_bytes": unpacked, "entries": files}


class Registry:
    """docker-registry on 127.0.0.1 (a free port, plain HTTP), storage under ``root``; ended by PID."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.host = f"127.0.0.1:{s.getsockname()[1]}"
        root.mkdir(parents=True)
        config = root / "config.yml"
        config.write_text("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                          f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
                          f"http:\n  addr: {self.host}\n")
        self.log = root / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

    def wait_up(self) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-600:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def bench_pull(args: argparse.Namespace, report: Report, work: Path, cleanup: contextlib.ExitStack) -> None:
    """docker:// pulls of one ~55 MB image from a local registry: pyrkt fetch, podman pull and
    skopeo copy + umoci unpack, each run into a fresh empty directory, interleaved per round."""
    missing = [t for t in (REGISTRY_BIN, "skopeo") if not shutil.which(t)]
    if missing:
        report.pull_skipped = f"{' and '.join(missing)} not installed (make deps)"
        print(f"bench: pull benchmark skipped: {report.pull_skipped}")
        return
    pull = work / "pull"
    pull.mkdir()
    print("bench: building the pull image (4 layers, ~55 MB compressed)")
    layout = pull / "image"
    report.pull_image = build_pull_image(layout)
    registry = Registry(pull / "registry")
    cleanup.callback(registry.stop)
    registry.wait_up()
    ref = f"{registry.host}/bench:latest"
    sh(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{ref}"])
    report.pull_ref = ref

    # short paths: podman refuses a --runroot longer than 50 characters
    runs_dir = work / "r"
    runs_dir.mkdir()
    if args.pull_fs == "tmpfs":
        mount_tmpfs(runs_dir, "pyrkt-bench-pull", "4g", cleanup)
    report.pull_fs = f"{runs_dir}: {fs_of(runs_dir)}"

    def pyrkt_fetch(d: Path) -> list[list[str]]:
        return [[str(PYRKT), f"--dir={d}", "--insecure-options=http", "fetch", f"docker://{ref}"]]

    def podman_pull(d: Path) -> list[list[str]]:
        return [[*podman_argv(d), "pull", "--quiet", "--tls-verify=false", ref]]

    def skopeo_umoci(d: Path) -> list[list[str]]:
        return [["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{d}/layout:latest"],
                ["umoci", "unpack", "--image", f"{d}/layout:latest", f"{d}/bundle"]]

    tools: list[tuple[str, Callable[[Path], list[list[str]]], Callable[[Path], None]]] = [
        ("pyrkt fetch", pyrkt_fetch, lambda d: None)]
    if "podman" not in args.skip and shutil.which("podman"):
        tools.append(("podman pull", podman_pull, reset_podman))
    if shutil.which("umoci"):
        tools.append(("skopeo copy + umoci unpack", skopeo_umoci, lambda d: None))
    timings = {name: Timing(name, " && ".join(" ".join(a) for a in argvs(runs_dir / "<fresh>")))
               for name, argvs, _ in tools}
    report.pull_timings = list(timings.values())
    with podman_globals() if len(tools) > 1 and tools[1][0] == "podman pull" else contextlib.nullcontext():
        total = args.pull_warmup + args.pull_runs
        print(f"bench: timing pulls of {ref}: {args.pull_warmup} warm-up + {args.pull_runs} rounds, "
              f"each tool into a fresh dir on {report.pull_fs}")
        for i in range(total):
            for name, argvs, reset in tools:
                timing = timings[name]
                if timing.error:
                    continue
                fresh = runs_dir / f"{i}{name[:2]}"
                fresh.mkdir()
                try:
                    elapsed = time_once(argvs(fresh))
                except RuntimeError as err:
                    timing.error, timing.times_ms = str(err), []
                    print(f"bench: {name} failed, left out: {err}")
                    continue
                finally:
                    reset(fresh)
                    remove_tree(fresh)
                if i >= args.pull_warmup:
                    timing.times_ms.append(elapsed)


def time_once(argvs: list[list[str]]) -> float:
    """Wall ms of the commands one after the other; RuntimeError when one fails."""
    start = time.perf_counter()
    for argv in argvs:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=USER_ENV)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return (time.perf_counter() - start) * 1000


# -- CRI -------------------------------------------------------------------------------------

def bench_cri(args: argparse.Namespace, report: Report, work: Path, cleanup: contextlib.ExitStack) -> None:
    """RunPodSandbox to RemovePodSandbox of one container running /bin/true on a cached image,
    from one Python gRPC client: ``pyrkt cri`` against containerd's CRI plugin, in turn (cri.py)."""
    import cri

    why = cri.containerd_missing()
    if why:
        report.cri_skipped = why
        print(f"bench: CRI benchmark skipped: {why}")
        return
    base = work / "c"
    base.mkdir()
    if args.start_fs == "tmpfs":
        mount_tmpfs(base, "pyrkt-bench-cri", "2g", cleanup)
    report.cri_fs = f"{base}: {fs_of(base)}"
    conf_dir = base / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-bench.conflist").write_text(cri.cni_conflist(base / "ipam"))
    print("bench: building the CRI images (busybox, and a sandbox image with a static pause)")
    archive = cri.build_images(REPO, base / "images.tar")
    layout = base / "layout"
    sh([VENV_PYTHON, IMAGES, "oci", layout, "--tag", "latest"])
    pyrkt = Pyrkt(base / "data")
    image = pyrkt.check("fetch", "--full", f"oci:{layout}").strip().splitlines()[-1]
    with contextlib.ExitStack() as servers:
        servers.callback(pyrkt.remove_all_pods)
        servers.enter_context(cri.host_state())
        ours = servers.enter_context(cri.pyrkt_cri(PYRKT, pyrkt.data, image, base / "p", conf_dir, print))
        try:
            peer = servers.enter_context(cri.containerd(base / "ctd", conf_dir, archive, print))
        except RuntimeError as err:
            report.cri_skipped = f"containerd could not be set up: {err}"
            print(f"bench: CRI benchmark skipped: {report.cri_skipped}")
            return
        what = (f"RunPodSandbox (pod network: CNI bridge {cri.SUBNET}), CreateContainer ({{image}} /bin/true), "
                "StartContainer, ContainerStatus until exited, StopPodSandbox, RemovePodSandbox")
        report.cri_timings = time_steps_alternately([
            ("pyrkt cri", f"pyrkt --dir={pyrkt.data} cri: " + what.format(image=image), ours.cycle),
            ("containerd cri", "containerd 1.6 (overlayfs, runc, cgroupfs): " + what.format(image=peer.image),
             peer.cycle)], args)
        report.cri_calls = {rt.name: rt.call_medians(args.warmup) for rt in (ours, peer)}


# -- report ----------------------------------------------------------------------------------

def judge(report: Report) -> None:
    def check(ok: bool | None, text: str) -> None:
        report.checks.append(("SKIP" if ok is None else "PASS" if ok else "FAIL", text))

    if "start" in report.sections:
        judge_start(report, check)
    if "pull" in report.sections:
        judge_pull(report, check)
    if "cri" in report.sections:
        judge_cri(report, check)


def judge_start(report: Report, check: Callable[[bool | None, str], None]) -> None:
    timings = {t.name: t for t in report.timings if t.times_ms}
    detach, sandbox = timings.get("pyrkt run --detach"), timings.get("pyrkt app sandbox")
    if detach and sandbox:
        check(sandbox.median <= TARGET_SANDBOX_RATIO * detach.median,
              f"pyrkt app sandbox + add + start median {sandbox.median / detach.median:.2f}x run --detach "
              f"<= {TARGET_SANDBOX_RATIO:g}x")
    else:
        check(None, "pyrkt app sandbox against run --detach did not run")
    if all(name in ("pyrkt run --detach", "pyrkt app sandbox") or name.startswith("  - ")
           for name in timings):
        return  # --only sandbox
    py = timings.get("pyrkt run")
    crun = timings.get("crun run")
    check(py is not None and py.median <= TARGET_MS,
          f"pyrkt run median {py.median:.1f} ms <= {TARGET_MS:g} ms" if py else "pyrkt run did not run")
    limited = timings.get("pyrkt run limits")
    if py and limited:
        check(limited.median <= py.median + TARGET_LIMITS_EXTRA_MS,
              f"pyrkt run --memory --cpu median {limited.median - py.median:+.1f} ms over pyrkt run "
              f"<= {TARGET_LIMITS_EXTRA_MS:g} ms")
    else:
        check(None, "pyrkt run with limits did not run")
    vol = timings.get("pyrkt run volumes")
    check(py is not None and vol is not None and vol.median - py.median <= TARGET_VOLUMES_MS,
          f"pyrkt run with two volumes {vol.median - py.median:+.1f} ms over the plain run <= {TARGET_VOLUMES_MS:g} ms"
          if py and vol else "pyrkt run with volumes did not run")
    userns = timings.get("pyrkt run userns")
    if py and userns:
        check(userns.median - py.median <= TARGET_USERNS_EXTRA_MS,
              f"pyrkt run --private-users median +{userns.median - py.median:.1f} ms over pyrkt run "
              f"<= {TARGET_USERNS_EXTRA_MS:g} ms")
    else:
        check(None, "pyrkt run --private-users: " + ("did not run" if py else "pyrkt run did not run"))
    py_net, podman_net = timings.get("pyrkt run default"), timings.get("podman run default")
    if py_net and podman_net:
        check(py_net.median <= TARGET_PODMAN_NET_RATIO * podman_net.median,
              f"pyrkt run on the default network {py_net.median / podman_net.median:.2f}x podman's "
              f"<= {TARGET_PODMAN_NET_RATIO:g}x")
    else:
        check(None, "pyrkt/podman ratio on the default networks: "
                    + ("podman did not run" if py_net else "pyrkt on the default network did not run"))
    if py and crun:
        check(py.median <= TARGET_CRUN_RATIO * crun.median,
              f"pyrkt run median {py.median / crun.median:.1f}x crun <= {TARGET_CRUN_RATIO:g}x")
    else:
        check(None, "pyrkt/crun ratio: crun did not run")
    if report.pss_one_mib is not None:
        check(report.pss_one_mib <= TARGET_PSS_MIB,
              f"idle pod's pyrkt processes {report.pss_one_mib:.2f} MiB PSS <= {TARGET_PSS_MIB:g} MiB")
    bad = {cmd: mods for cmd, mods in report.forbidden.items() if mods}
    check(not bad, "no HTTP, progress-bar or gRPC module on the hot path"
          + ("" if not bad else ": " + "; ".join(f"{c}: {', '.join(m)}" for c, m in bad.items())))


def judge_pull(report: Report, check: Callable[[bool | None, str], None]) -> None:
    if report.pull_skipped:
        check(None, f"pull benchmark: {report.pull_skipped}")
        return
    pulls = {t.name.split()[0]: t for t in report.pull_timings if t.times_ms}
    py = pulls.get("pyrkt")
    for other, target, label in (("podman", TARGET_PULL_PODMAN_RATIO, "podman pull"),
                                 ("skopeo", TARGET_PULL_SKOPEO_RATIO, "skopeo copy + umoci unpack")):
        if py and other in pulls:
            ratio = py.median / pulls[other].median
            sign = "<=" if other == "podman" else "<"
            ok = ratio <= target if other == "podman" else ratio < target
            check(ok, f"pyrkt fetch median {ratio:.2f}x {label} {sign} {target:g}x")
        else:
            check(None if py else False, f"pyrkt fetch / {label}: " + (f"{label} did not run" if py
                                                                       else "pyrkt fetch did not run"))


def judge_cri(report: Report, check: Callable[[bool | None, str], None]) -> None:
    rows = {t.name: t for t in report.cri_timings if t.times_ms}
    py, peer = rows.get("pyrkt cri"), rows.get("containerd cri")
    if py and peer:
        check(py.median <= TARGET_CRI_RATIO * peer.median,
              f"pyrkt cri sandbox cycle median {py.median / peer.median:.2f}x containerd's <= {TARGET_CRI_RATIO:g}x")
    elif report.cri_skipped:
        check(None, f"pyrkt cri / containerd: {report.cri_skipped}")
    else:
        check(None if py else False, "pyrkt cri / containerd: " + ("containerd did not run" if py
                                                                   else "pyrkt cri did not run"))


def print_ms_table(timings: list[Timing], width: int) -> None:
    """Median, p90 and min of each row in ms (or why it failed), then each row's command."""
    print(f"  {'':{width}} {'median':>9} {'p90':>9} {'min':>9}")
    for t in timings:
        if t.times_ms:
            print(f"  {t.name:{width}} {t.median:7.1f}ms {t.p90:7.1f}ms {min(t.times_ms):7.1f}ms")
        else:
            print(f"  {t.name:{width}} failed: {t.error or 'not run'}")
    for t in timings:
        if t.command:  # a row that is part of another has none
            print(f"    {t.name}: {t.command}")


def print_cri(report: Report) -> None:
    print(f"\n== CRI: a sandbox with one container, RunPodSandbox to RemovePodSandbox, {report.runs} runs each ==")
    if report.cri_skipped:
        print(f"  skipped: {report.cri_skipped}")
        return
    print(f"  data dirs on: {report.cri_fs}")
    print_ms_table(report.cri_timings, 16)
    calls = list(dict.fromkeys(c for per in report.cri_calls.values() for c in per))  # in the order called
    if calls:
        print("  medians per call (ms):" + "".join(f" {c:>9.9}" for c in calls))
        for name, per in report.cri_calls.items():
            print(f"  {name:22}" + "".join(f" {per[c]:9.1f}" if c in per else f" {'-':>9}" for c in calls))
    medians = {t.name: t.median for t in report.cri_timings if t.times_ms}
    if len(medians) == 2:
        print(f"  ratio of medians: pyrkt/containerd {medians['pyrkt cri'] / medians['containerd cri']:.2f}x")


def print_pull(report: Report) -> None:
    print(f"\n== pull: docker://{report.pull_ref or '(registry)'} from a local docker-registry, "
          f"{report.pull_runs} runs each, each into a fresh empty dir ==")
    if report.pull_skipped:
        print(f"  skipped: {report.pull_skipped}")
        return
    img = report.pull_image
    if img:
        print(f"  image: {img['layers']} layers, {img['compressed_bytes'] / 1e6:.1f} MB compressed, "
              f"{img['unpacked_bytes'] / 1e6:.1f} MB unpacked, {img['entries']} tar entries")
    print(f"  fresh dirs on: {report.pull_fs}")
    print(f"  {'':28} {'median':>9} {'min':>9} {'max':>9}")
    for t in report.pull_timings:
        if t.times_ms:
            print(f"  {t.name:28} {t.median / 1000:8.2f}s {min(t.times_ms) / 1000:8.2f}s "
                  f"{max(t.times_ms) / 1000:8.2f}s")
        else:
            print(f"  {t.name:28} failed: {t.error or 'not run'}")
    for t in report.pull_timings:
        print(f"    {t.name}: {t.command}")
    pulls = {t.name: t.median for t in report.pull_timings if t.times_ms}
    if "pyrkt fetch" in pulls:
        ratios = [f"pyrkt/{name} {pulls['pyrkt fetch'] / m:.2f}x" for name, m in pulls.items() if name != "pyrkt fetch"]
        print("  ratios of medians: " + ("   ".join(ratios) or "none (nothing to compare with)"))


def print_report(report: Report) -> None:
    if "start" in report.sections:
        print_start(report)
    if "pull" in report.sections:
        print_pull(report)
    if "cri" in report.sections:
        print_cri(report)
    print("\n== targets ==")
    for status, text in report.checks:
        print(f"  {status}  {text}")


def print_start(report: Report) -> None:
    print(f"\n== start time: wall clock of the whole command, {report.runs} runs each ==")
    print(f"pyrkt data dir: {report.data_dir}")
    print_ms_table(report.timings, 18)
    medians = {t.name: t.median for t in report.timings if t.times_ms}
    if "pyrkt run" in medians:
        ratios = [f"pyrkt/{other.split()[0]} {medians['pyrkt run'] / m:.2f}x"
                  for other, m in medians.items()
                  if not other.startswith(("pyrkt", "  - ")) and not other.endswith("default")]
        print("  ratios of medians: " + ("   ".join(ratios) or "none (nothing to compare with)"))
    if {"  - app add", "  - app start", "pyrkt run --detach"} <= set(medians):
        per_app = medians["  - app add"] + medians["  - app start"]
        print(f"  an app once its sandbox runs (app add + app start): {per_app:.1f} ms, "
              f"{per_app / medians['pyrkt run --detach']:.2f}x run --detach (informative)")
    if {"  - app sandbox", "  - pyrkt version", "pyrkt run --detach"} <= set(medians):
        floor = medians["  - app sandbox"] + 2 * medians["  - pyrkt version"]
        print(f"  the sandbox path's floor (app sandbox + two bare CLI starts, as if add and start did no work): "
              f"{floor:.1f} ms, {floor / medians['pyrkt run --detach']:.2f}x run --detach (informative)")
    if {"  - app sandbox", "  - bare python", "pyrkt run --detach"} <= set(medians):
        floor = medians["  - app sandbox"] + 2 * medians["  - bare python"]
        print(f"  and with two bare interpreters instead (add and start as Python processes that import nothing): "
              f"{floor:.1f} ms, {floor / medians['pyrkt run --detach']:.2f}x run --detach (informative)")

    if "pyrkt run default" in medians and "podman run default" in medians:
        print(f"  default networks (pyrkt: CNI ptp+portmap; podman: netavark bridge): pyrkt/podman "
              f"{medians['pyrkt run default'] / medians['podman run default']:.2f}x")
    nt = report.net_timings
    if nt:
        print(f"  pyrkt run on the default network, medians per run: {nt['wall']:.1f} ms in all, network up "
              f"{nt['up']:.1f} ms + down {nt['down']:.1f} ms, of which the CNI plugins {nt['plugins']:.1f} ms "
              f"({100 * nt['plugins'] / nt['wall']:.0f}% of the run)")

    print("\n== memory: PSS of an idle pod's pyrkt processes (pod init and any pyrkt Python, not the app) ==")
    if report.pss_one_mib is not None:
        print(f"  one pod:   {report.pss_one_mib:.2f} MiB")
        for line in report.pss_one_detail:
            print(f"     {line}")
    if report.pss_many_mib is not None:
        print(f"  {report.pods} pods:   {report.pss_many_mib:.2f} MiB per pod (total / {report.pods})")
    if report.pss_one_mib is None:
        print("  not measured")

    print("\n== hot-path imports: forbidden modules loaded ==")
    for cmd, mods in report.forbidden.items():
        print(f"  pyrkt {cmd:12} {', '.join(mods) if mods else 'none'}")


# -- plumbing --------------------------------------------------------------------------------

class Pyrkt:
    """The installed CLI on the benchmark's own data dir."""

    def __init__(self, data: Path) -> None:
        self.data = data

    def argv(self, *args: str) -> list[str]:
        return [str(PYRKT), f"--dir={self.data}", *args]

    def check(self, *args: str) -> str:
        return sh(self.argv(*args))

    def pod_pid(self, uuid: str) -> int:
        return int((self.data / "pods" / "run" / uuid / "pid").read_text())

    def is_running(self, uuid: str) -> bool:
        """The pod dir's lock is held (by pod init)."""
        try:
            fd = os.open(self.data / "pods" / "run" / uuid, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def remove_all_pods(self) -> None:
        """Stop every pod still running (then KILL pod init by pid), collect them all."""
        run_dir = self.data / "pods" / "run"
        uuids = sorted(os.listdir(run_dir)) if run_dir.is_dir() else []
        if uuids:
            subprocess.run(self.argv("stop", "--force", *uuids), capture_output=True)
        for uuid in uuids:
            if self.is_running(uuid):  # stop failed: end pod init by its pid
                with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                    os.kill(self.pod_pid(uuid), signal.SIGKILL)
                deadline = time.monotonic() + 5
                while self.is_running(uuid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        if self.data.is_dir():
            subprocess.run(self.argv("gc", "--grace-period=0s"), capture_output=True)


def sh(argv: Sequence[str | Path], cwd: Path | None = None) -> str:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: exit {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return proc.stdout


def unpack_layers(layout: Path, rootfs: Path) -> None:
    """The layers of the layout's only image, bottom first (busybox image: no whiteouts)."""
    def blob(digest: str) -> Path:
        return layout / "blobs" / digest.replace(":", "/", 1)

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    rootfs.mkdir(parents=True)
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"])) as tar:
            # tarfile's filters came in 3.11.4; Debian 12's python3 is 3.11.2 (our own test image)
            tar.extractall(rootfs, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))


def mount_tmpfs(path: Path, name: str, size: str, cleanup: contextlib.ExitStack) -> None:
    """A private tmpfs of ``size`` on ``path``, lazily unmounted when ``cleanup`` closes."""
    sh(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", name, path])
    cleanup.callback(lambda: subprocess.run(["umount", "--lazy", str(path)], capture_output=True))


def fs_of(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,TARGET", "--target", str(path)],
                         capture_output=True, text=True).stdout.split()
    return f"{out[0]} {out[1]} mounted on {out[2]}" if len(out) == 3 else "unknown filesystem"


def unmount_under(path: Path) -> None:
    root = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == root or p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)


def remove_tree(path: Path) -> None:
    if str(path).startswith("/sys/fs/cgroup/"):  # a cgroup: only its directories can be removed
        for top, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(top)
    elif path.is_dir() and not path.is_symlink():
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


if __name__ == "__main__":
    sys.exit(main())
