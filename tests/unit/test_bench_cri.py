"""The benchmark's CRI row (bench/cri.py): the containerd config it writes keeps every path of
containerd's own under the benchmark's dirs, and its CNI network adds no gateway or NAT."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from types import ModuleType

BENCH_CRI = Path(__file__).resolve().parents[2] / "bench" / "cri.py"


@functools.cache
def bench_cri() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cri", BENCH_CRI)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cri"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_containerds_config_puts_its_state_under_the_benchmarks_dirs() -> None:
    cri = bench_cri()
    base = Path("/var/tmp/pyrkt-bench-x/c/ctd")
    text = cri.containerd_config(root=base / "root", state=base / "state", sock=base / "containerd.sock",
                                 cni_conf_dir=Path("/var/tmp/pyrkt-bench-x/c/net.d"),
                                 sandbox_image="localhost/pyrkt-bench/pause:1")
    conf = tomllib.loads(text)
    assert (conf["version"], conf["root"], conf["state"]) == (2, f"{base}/root", f"{base}/state")
    assert conf["grpc"]["address"] == f"{base}/containerd.sock"
    assert conf["ttrpc"]["address"] == f"{base}/containerd.sock.ttrpc"
    assert conf["debug"]["address"] == "" and conf["metrics"]["address"] == ""
    assert conf["plugins"]["io.containerd.internal.v1.opt"]["path"] == f"{base}/root/opt"  # not /opt/containerd
    cri_conf = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri_conf["sandbox_image"] == "localhost/pyrkt-bench/pause:1"
    assert cri_conf["netns_mounts_under_state_dir"] is True  # not /run/netns
    assert cri_conf["disable_apparmor"] is True and cri_conf["restrict_oom_score_adj"] is True
    assert cri_conf["containerd"]["snapshotter"] == "overlayfs"
    runc = cri_conf["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "Root": f"{base}/state/runc"}  # not /run/containerd/runc
    assert cri_conf["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/var/tmp/pyrkt-bench-x/c/net.d",
                               "max_conf_num": 1}


def test_a_path_with_quotes_stays_one_toml_string() -> None:
    cri = bench_cri()
    odd = Path('/tmp/a "b" \\c')
    conf = tomllib.loads(cri.containerd_config(root=odd, state=odd, sock=odd / "s", cni_conf_dir=odd,
                                               sandbox_image="p"))
    assert conf["root"] == str(odd) and conf["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["conf_dir"] == str(odd)


def test_the_cni_network_is_a_bridge_without_gateway_or_nat_on_its_own_subnet() -> None:
    cri = bench_cri()
    conf = json.loads(cri.cni_conflist(Path("/x/ipam")))
    assert conf["name"] == "pyrkt-bench-cri" and conf["cniVersion"] == "0.4.0"
    [bridge] = conf["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == ("bridge", cri.BRIDGE,
                                                                                          False, False)
    assert len(cri.BRIDGE) <= 15  # IFNAMSIZ
    assert bridge["ipam"] == {"type": "host-local", "subnet": cri.SUBNET, "dataDir": "/x/ipam"}
