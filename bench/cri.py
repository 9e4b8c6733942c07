"""The benchmark's CRI row: ``pyrkt cri`` against containerd's CRI plugin, the same calls from the
same Python gRPC client (see bench/README.md, "CRI").

One cycle, timed as a whole: RunPodSandbox (a pod network from a bridge CNI config both runtimes
are given), CreateContainer of a cached busybox image running ``/bin/true``, StartContainer,
ContainerStatus until it has exited, StopPodSandbox, RemovePodSandbox. Each runtime is a
long-running server started (untimed) before the rows and ended by its PID after them.

containerd runs on a config of the benchmark's own (``containerd_config``): root, state, socket,
runc root, opt dir and netns mounts all under the benchmark's dir; images are imported with
``ctr -n k8s.io images import`` from a ``docker save`` archive the benchmark builds (busybox, and
a sandbox image holding a tiny ``pause``), since nothing can be pulled here.

The pure parts (the configs) are unit-tested in tests/unit/test_bench_cri.py; the rest needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
CNI_BIN_DIR = "/usr/lib/cni"
NAMESPACE = "k8s.io"  # containerd's CRI plugin keeps its images and containers in this namespace
PAUSE_REF = "localhost/pyrkt-bench/pause:1"
BUSYBOX_REF = "localhost/pyrkt-bench/busybox:latest"
NETWORK = "pyrkt-bench-cri"
BRIDGE = "pkbench-cri0"  # at most 15 characters
SUBNET = "10.231.77.0/24"  # not routed on this host (ip route); only pod traffic inside the host
# disabled in containerd: snapshotters this host has no use for, and tracing
CONTAINERD_OFF = ("io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing")
# the sandbox's process: waits, reaps what it is given, and exits 0 on SIGTERM or SIGINT (as
# Kubernetes' pause does; busybox's sleep as pid 1 would ignore TERM and wait for the KILL)
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction q = {0}, r = {0};
    q.sa_handler = quit;
    r.sa_handler = reap;
    r.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGTERM, &q, 0);
    sigaction(SIGINT, &q, 0);
    sigaction(SIGCHLD, &r, 0);
    for (;;) pause();
}
"""
PAUSE_SH = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"  # without gcc


def toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these paths and names


def containerd_config(*, root: Path, state: Path, sock: Path, cni_conf_dir: Path, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2) with every path of its own under ``root`` and ``state``:
    the CRI plugin on overlayfs, runc with cgroupfs, the benchmark's CNI dir, the netns mounts
    under the state dir (not /run/netns), runc's state under it (not /run/containerd/runc), the
    opt plugin's dir under the root (not /opt/containerd); no debug or metrics socket."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
    return "\n".join([
        "version = 2",
        f"root = {toml_str(str(root))}",
        f"state = {toml_str(str(state))}",
        "disabled_plugins = [" + ", ".join(toml_str(p) for p in CONTAINERD_OFF) + "]",
        "",
        "[grpc]",
        f"  address = {toml_str(str(sock))}",
        "[ttrpc]",
        f"  address = {toml_str(str(sock) + '.ttrpc')}",
        "[debug]",
        '  address = ""',
        '  level = "warn"',
        "[metrics]",
        '  address = ""',
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {toml_str(str(root / 'opt'))}",
        cri,
        f"  sandbox_image = {toml_str(sandbox_image)}",
        "  netns_mounts_under_state_dir = true",
        "  disable_apparmor = true",
        "  restrict_oom_score_adj = true",  # root here lacks CAP_SYS_RESOURCE: no lower oom_score_adj
        "  enable_selinux = false",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        cri[:-1] + ".containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        runc,
        '  runtime_type = "io.containerd.runc.v2"',
        runc[:-1] + ".options]",
        "  SystemdCgroup = false",
        f"  Root = {toml_str(str(state / 'runc'))}",
        cri[:-1] + ".cni]",
        f"  bin_dir = {toml_str(CNI_BIN_DIR)}",
        f"  conf_dir = {toml_str(str(cni_conf_dir))}",
        "  max_conf_num = 1",
        "",
    ])


def cni_conflist(ipam_dir: Path, *, name: str = NETWORK, bridge: str = BRIDGE, subnet: str = SUBNET) -> str:
    """A bridge network with host-local addresses from ``subnet`` (leases under ``ipam_dir``): no
    gateway on the host and no masquerade, so it adds no iptables rule and routes nothing out."""
    return json.dumps({
        "cniVersion": "0.4.0", "name": name,
        "plugins": [{"type": "bridge", "bridge": bridge, "isGateway": False, "ipMasq": False,
                     "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(ipam_dir)}}],
    }, indent=1) + "\n"


# -- the client ------------------------------------------------------------------------------

class Client:
    """``runtime.v1`` calls on a unix socket, as the tests' client makes them."""

    def __init__(self, sock: Path) -> None:
        import grpc

        from pyrkt.api.proto import cri_pb2

        self.pb: Any = cri_pb2
        self.channel = grpc.insecure_channel(f"unix://{sock}")

    def call(self, method: str, **fields: Any) -> Any:
        service = "ImageService" if "Image" in method else "RuntimeService"
        request = getattr(self.pb, f"{method}Request")(**fields)
        response = getattr(self.pb, f"{method}Response")
        return self.channel.unary_unary(f"/runtime.v1.{service}/{method}",
                                        request_serializer=type(request).SerializeToString,
                                        response_deserializer=response.FromString)(request, timeout=60)

    def close(self) -> None:
        self.channel.close()


@dataclass
class Runtime:
    """One CRI server under test: its client, the image id its containers are created from, and
    the milliseconds of each call per timed cycle."""

    name: str
    client: Client
    image: str
    logs: Path
    calls: dict[str, list[float]] = field(default_factory=dict)

    def cycle(self, i: int) -> None:
        """One sandbox with one container that runs ``/bin/true``, from RunPodSandbox to
        RemovePodSandbox; RuntimeError when a call fails."""
        import grpc

        pb, call = self.client.pb, self.client.call
        logs = self.logs / str(i)
        logs.mkdir(parents=True)  # the kubelet makes the pod's log dir
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"bench-{i}", uid=f"uid-{i}", namespace="bench", attempt=0),
            hostname=f"bench-{i}", log_directory=str(logs), labels={"bench": "cri"},
            linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.POD, ipc=pb.POD))))
        # the pod's PID namespace (pyrkt's apps share it) and the runtime's default seccomp
        # filter (pyrkt always applies its own): the same on both sides
        container = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="app", attempt=0), image=pb.ImageSpec(image=self.image),
            command=["/bin/true"], log_path="app/0.log",
            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))))
        took: dict[str, float] = {}
        try:
            t = time.perf_counter()
            sid = call("RunPodSandbox", config=config).pod_sandbox_id
            t = lap(took, "RunPodSandbox", t)
            cid = call("CreateContainer", pod_sandbox_id=sid, config=container, sandbox_config=config).container_id
            t = lap(took, "CreateContainer", t)
            call("StartContainer", container_id=cid)
            t = lap(took, "StartContainer", t)
            deadline = time.monotonic() + 30
            while (st := call("ContainerStatus", container_id=cid).status).state != pb.CONTAINER_EXITED:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: container {cid} has not exited after 30 s")
                time.sleep(0.005)
            if st.exit_code != 0:
                raise RuntimeError(f"{self.name}: /bin/true exited {st.exit_code} ({st.reason}: {st.message})")
            t = lap(took, "wait exited", t)
            call("StopPodSandbox", pod_sandbox_id=sid)
            t = lap(took, "StopPodSandbox", t)
            call("RemovePodSandbox", pod_sandbox_id=sid)
            lap(took, "RemovePodSandbox", t)
        except grpc.RpcError as err:
            raise RuntimeError(f"{self.name}: {err.code().name}: {err.details()}") from None
        for name, ms in took.items():
            self.calls.setdefault(name, []).append(ms)

    def call_medians(self, warmup: int) -> dict[str, float]:
        return {name: statistics.median(ms[warmup:]) for name, ms in self.calls.items() if ms[warmup:]}

    def remove_all(self) -> None:
        """Stop and remove every sandbox the server knows (after a failed cycle)."""
        import grpc

        with contextlib.suppress(grpc.RpcError):
            for s in self.client.call("ListPodSandbox").items:
                with contextlib.suppress(grpc.RpcError):
                    self.client.call("StopPodSandbox", pod_sandbox_id=s.id)
                    self.client.call("RemovePodSandbox", pod_sandbox_id=s.id)


def lap(took: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    took[name] = (now - start) * 1000
    return now


def wait_serving(client: Client, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    import grpc

    deadline = time.monotonic() + 30
    while True:
        try:
            client.call("Version", version="v1")
            return
        except grpc.RpcError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-600:]}") from None
            time.sleep(0.1)


def end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by its PID, SIGKILL after 15 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


# -- images ----------------------------------------------------------------------------------

def build_images(repo: Path, dest: Path) -> Path:
    """A ``docker save`` archive of the sandbox image (a static ``/pause``, or busybox's sh when
    there is no gcc) and the busybox image (both on the tests' busybox base layer)."""
    sys.path.insert(0, str(repo))
    from tests.support.images import Entry, build_docker_archive

    pause: dict[str, Any] = {"entrypoint": ("/bin/sh", "-c", PAUSE_SH), "cmd": None}
    if shutil.which("gcc"):
        src = dest.parent / "pause.c"
        src.write_text(PAUSE_C)
        binary = dest.parent / "pause"
        proc = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(src)], capture_output=True,
                              text=True)
        if proc.returncode == 0:
            pause = {"entrypoint": ("/pause",), "cmd": None,
                     "extra_layers": [{"pause": Entry.file(binary.read_bytes(), mode=0o755)}]}
        else:
            print(f"bench: gcc could not build pause ({proc.stderr.strip()[-200:]}); the sandbox runs busybox sh")
    return build_docker_archive(dest, repo_tag=PAUSE_REF, more_images=[(BUSYBOX_REF, {"cmd": ("sh",)})], **pause)


# -- the two servers -------------------------------------------------------------------------

def containerd_missing() -> str:
    """Why containerd's row cannot run, or ""."""
    missing = [b for b in (CONTAINERD, CTR, "containerd-shim-runc-v2", "runc") if not shutil.which(b)]
    return f"{', '.join(missing)} not installed (make bench-deps installs Debian's containerd)" if missing else ""


@contextlib.contextmanager
def containerd(base: Path, conf_dir: Path, archive: Path, log: Callable[[str], None]) -> Iterator[Runtime]:
    """containerd on its own config, root, state and socket under ``base``, the archive's images
    imported; on exit every sandbox is removed, containerd is ended by its PID, and a shim still
    running for its socket is killed by its PID."""
    root, state, sock = base / "root", base / "state", base / "containerd.sock"
    base.mkdir()
    config = base / "config.toml"
    config.write_text(containerd_config(root=root, state=state, sock=sock, cni_conf_dir=conf_dir,
                                        sandbox_image=PAUSE_REF))
    logfile = base / "containerd.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen([CONTAINERD, "--config", str(config)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True)
    client = Client(sock)
    runtime = Runtime("containerd", client, "", base / "logs")
    try:
        wait_serving(client, proc, logfile, "containerd")
        ctr = [CTR, f"--address={sock}", f"--namespace={NAMESPACE}"]
        run([*ctr, "images", "import", "--snapshotter=overlayfs", str(archive)])
        runtime.image = str(client.call("ImageStatus", image=client.pb.ImageSpec(image=BUSYBOX_REF)).image.id)
        if not runtime.image:
            raise RuntimeError(f"containerd: {BUSYBOX_REF} not found after the import")
        log(f"containerd {proc.pid} serving on {sock}, image {runtime.image}")
        yield runtime
    finally:
        runtime.remove_all()
        client.close()
        end(proc)
        for pid in shims_of(sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def shims_of(sock: Path) -> list[int]:
    """PIDs of containerd-shim-runc-v2 processes started for the containerd on ``sock``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"containerd-shim-runc-v2" and str(sock).encode() in argv:
            found.append(int(entry))
    return found


@contextlib.contextmanager
def pyrkt_cri(pyrkt: Path, data: Path, image: str, base: Path, conf_dir: Path,
              log: Callable[[str], None]) -> Iterator[Runtime]:
    """``pyrkt cri`` on the data dir ``data`` (the image fetched there); ended by its PID."""
    base.mkdir()
    sock = base / "cri.sock"
    logfile = base / "pyrkt-cri.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen([str(pyrkt), f"--dir={data}", "cri", f"--listen=unix://{sock}",
                                 f"--cni-conf-dir={conf_dir}", f"--cni-bin-dir={CNI_BIN_DIR}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    client = Client(sock)
    runtime = Runtime("pyrkt", client, image, base / "logs")
    try:
        wait_serving(client, proc, logfile, "pyrkt cri")
        log(f"pyrkt cri {proc.pid} serving on {sock}")
        yield runtime
    finally:
        runtime.remove_all()
        client.close()
        end(proc)


@contextlib.contextmanager
def host_state() -> Iterator[None]:
    """Afterwards, remove what the two runtimes made outside the benchmark's dir when it was not
    there before: the bridge (the CNI plugin never removes it), containerd's shim socket dir
    ``/run/containerd``, libcni's result cache dirs, the ``k8s.io`` cgroup runc makes in every
    hierarchy (containerd's containers without a cgroup parent go under it)."""
    made = ("/run/containerd", "/var/lib/cni/results", "/var/lib/cni")
    cgroups = [str(h / NAMESPACE) for h in Path("/sys/fs/cgroup").iterdir()]  # runc's default parent
    existed = {p for p in (*made, *cgroups) if os.path.lexists(p)}
    try:
        yield
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        for path in made:
            if path not in existed and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True) if path == "/run/containerd" else rmdir_empty(path)
        for path in cgroups:
            if path not in existed and os.path.isdir(path):  # only directories can be removed from a cgroup
                for top, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                    rmdir_empty(top)


def rmdir_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return proc.stdout
