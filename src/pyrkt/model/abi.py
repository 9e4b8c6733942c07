"""The versioned contract between stage0 and stage1: the pod dir's files and runtime config.

stage0 writes a pod dir; a stage1 flavor runs it. Both sides import only this module to agree
on names, so the layout is written down once (mirrored in docs/stage1-abi.md)::

    $P/                               a pod dir: pods/<state>/<uuid>
    ├── pod                           appc pod manifest (model.pod), 0640
    ├── pod-created                   mtime = creation time
    ├── runtime-config                RuntimeConfig (JSON), the run-time flags
    ├── flavor                        name of the stage1 flavor ("default", "fly", "image")
    ├── pid                           host pid of pod init (mtime = start time)
    ├── subcgroup                     cgroup path of the pod below each hierarchy
    ├── cgroup-parent                 the cgroup the pod's goes under (--cgroup-parent), from prepare
    ├── netns                         path of the pod's netns bind mount (written before use)
    ├── devices                       JSON list of the pod's --device flags, HOSTPATH[:CONTAINERPATH]:ACCESS
    ├── apps-lock                     mutable pods: the lock `app` commands take (empty file)
    ├── private-users-prepared        "SHIFT:COUNT": the pod's user namespace (--private-users)
    ├── mds-token                     the pod's metadata service token (run --mds-register), 0600
    ├── stop-timeout                  seconds from the apps' TERM to their KILL, as `pyrkt stop --timeout` asked
    ├── appsinfo/<app>/manifest       the app's image (model.image.Image JSON, with appc's acKind/acVersion)
    ├── appsinfo/<app>/layers         JSON list of layer dirs, bottom first (overlay lowers)
    ├── appsinfo/<app>/plan           mutable pods: the app's plan (marshal), written by `app add`, read at each start
    ├── overlay/<app>/{upper,work}    the app's writable layer (none with --no-overlay: the
    │                                 app's rootfs below is then a copy of its image)
    ├── logs/<app>.log                the app's stdout/stderr, one record per line
    ├── stage1ImageID                 flavor "image": the id of the stage1 image in the store
    ├── stage1/manifest               flavor "image": the stage1 image's appc manifest
    └── stage1/rootfs/                flavor "image": the stage1 image's rootfs, rendered
        ├── opt/stage2/<app>/rootfs   where the app's root is mounted
        └── rkt/
            ├── status/<app>          decimal exit code; <app>-created, <app>-started stamps
            ├── requests/<app>        mutable pods: "ACTION NONCE" for pod init; <app>.result its answer
            ├── env/<app>             the app's environment, NUL separated
        ├── iottymux/<app>/       sock-{tty,stdin,stdout,stderr}: an app in stream/tty mode (attach)
            └── supervisor-status     symlink to "ready" once every app has started

``PYRKT_LOCK_FD`` names the inherited fd holding the pod dir's exclusive flock: the pod is
running exactly as long as some process of it keeps that fd open.
"""

from __future__ import annotations

from pyrkt.model import jsonio
from pyrkt.model.devices import HostDevice
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INTERFACE_VERSION = 2  # 2: typed ipc/config_dirs/dns/hosts/sysctls, no "extra"
LOCK_FD_ENV = "PYRKT_LOCK_FD"

POD_MANIFEST = "pod"
POD_CREATED = "pod-created"
RUNTIME_CONFIG = "runtime-config"
FLAVOR = "flavor"
PID = "pid"
PPID = "ppid"  # flavor "image": a stage1 may name the parent of the process to enter instead
PGID = "pgid"
SUBCGROUP = "subcgroup"
CGROUP_PARENT = "cgroup-parent"
NETNS = "netns"
DEVICES = "devices"
PRIVATE_USERS = "private-users-prepared"
MDS_TOKEN = "mds-token"
NET_INFO = "net-info.json"
APPSINFO = "appsinfo"
OVERLAY = "overlay"
LOGS = "logs"
STAGE1_ROOTFS = "stage1/rootfs"
STAGE1_MANIFEST = "stage1/manifest"
STAGE1_IMAGE_ID = "stage1ImageID"
STATUS_DIR = "stage1/rootfs/rkt/status"
ENV_DIR = "stage1/rootfs/rkt/env"
SUPERVISOR_STATUS = "stage1/rootfs/rkt/supervisor-status"
REQUESTS_DIR = "stage1/rootfs/rkt/requests"  # mutable pods: `app start|stop|rm` to pod init
APPS_LOCK = "apps-lock"  # mutable pods: flock'ed by `app add|start|stop|rm` (pod init holds the dir's)
MUTABLE_ANNOTATION = "coreos.com/rkt/stage1/mutable"  # "true" on an `app sandbox` pod, as rkt's
PRIVILEGED_ANNOTATION = "pyrkt.io/privileged"  # "true" on a privileged app (`--privileged`, a CRI's): pyrkt's own

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10.0
STOP_TIMEOUT = "stop-timeout"  # what `pyrkt stop --timeout` asked: seconds from pod init's TERM to its KILL
STOP_GRACE = 5.0  # how long past its stop timeout a pod init (or an app it KILLed) may take to be gone


def app_rootfs(app: str) -> str:
    return f"{STAGE1_ROOTFS}/opt/stage2/{app}/rootfs"


def app_manifest(app: str) -> str:
    return f"{APPSINFO}/{app}/manifest"


def app_layers(app: str) -> str:
    return f"{APPSINFO}/{app}/layers"


def app_log(app: str) -> str:
    return f"{LOGS}/{app}.log"


def app_status(app: str) -> str:
    return f"{STATUS_DIR}/{app}"


class Dns(Value):
    """The ``--dns*`` flags, checked: ``mode`` "" (no flag: CNI or the image decide), "flags"
    (servers, search, options, domain), "host" or "none"."""

    mode: str = ""
    servers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    domain: str = ""


class RuntimeConfig(Value):
    """Run-time parameters of a pod (rkt's stage1 run argv, kept as a file)."""

    uuid: str
    flavor: str = "default"
    net: tuple[str, ...] = ("default",)
    hostname: str = ""
    interactive: bool = False
    debug: bool = False
    disable_capabilities: bool = False
    disable_paths: bool = False
    disable_seccomp: bool = False
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    cache_dir: str = ""  # where stage1 may cache compiled artefacts (seccomp BPF)
    devices: tuple[HostDevice, ...] = ()  # --device: made in every app's /dev and allowed
    ipc: str = "auto"  # --ipc: auto, private or parent
    pid: str = ""  # --pid: "host" (the apps in the host's PID namespace), else a namespace of the pod's
    config_dirs: tuple[str, ...] = ()  # where net.d is read (system, local, user)
    dns: Dns = Dns()
    hosts_from_host: bool = False  # --hosts-entry=host
    hosts: tuple[tuple[str, str], ...] = ()  # --hosts-entry IP=HOST pairs, in order
    sysctls: tuple[tuple[str, str], ...] = ()  # --sysctl key, value; checked again by pod init
    private_users: str = ""  # "SHIFT:COUNT" from the pod's private-users-prepared (rkt's --private-users=)
    mds_token: str = ""  # run --mds-register: the token of the apps' AC_METADATA_URL (rkt's --mds-token)
    mds_port: int = 0  # and the metadata service's TCP port
    mutable: bool = False  # `app sandbox`: no app at start, apps added and removed later (rkt's --mutable)
    cgroup_parent: str = ""  # --cgroup-parent, checked (model.cgroup): the pod's cgroup goes below it

    def to_json(self) -> str:
        d: dict[str, Any] = {n: getattr(self, n) for n in type(self)._fields}
        d["version"] = INTERFACE_VERSION
        d["net"] = list(self.net)
        d["devices"] = [x.to_json() for x in self.devices]
        d["dns"] = {n: getattr(self.dns, n) for n in Dns._fields}
        return jsonio.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> RuntimeConfig:
        return cls.from_dict(jsonio.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "runtime-config") -> RuntimeConfig:
        """Read a config this pyrkt's stage0 wrote; one written by another interface version is
        refused with one line naming both (pods are not carried across an upgrade of pyrkt)."""
        from pyrkt.errors import PyrktError

        d = dict(d)
        version = d.pop("version", None)
        if version != INTERFACE_VERSION:
            raise PyrktError(f"{where}: written for stage1 interface version {version}; "
                             f"this pyrkt reads version {INTERFACE_VERSION}")
        unknown = sorted(set(d) - set(cls._fields))
        if unknown:
            raise PyrktError(f"{where}: unknown field {unknown[0]!r}")
        d["net"] = tuple(d.get("net") or ("default",))
        d["devices"] = tuple(HostDevice.from_json(x) for x in d.get("devices") or ())
        d["config_dirs"] = tuple(d.get("config_dirs") or ())
        dns: dict[str, Any] = {n: tuple(v) if isinstance(v, list) else v for n, v in (d.get("dns") or {}).items()}
        d["dns"] = Dns(**dns)
        d["hosts"] = tuple((str(ip), str(host)) for ip, host in d.get("hosts") or ())
        d["sysctls"] = tuple((str(k), str(v)) for k, v in d.get("sysctls") or ())
        return cls(**d)
