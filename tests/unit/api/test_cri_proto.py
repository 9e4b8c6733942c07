"""pyrkt's cri.proto is the CRI's runtime.v1 on the wire, and the checked-in generated code is
the .proto's. Key messages are pinned here; the whole file is compared with the published
api.proto (kubernetes/cri-api) when a copy is readable: ``$PYRKT_CRI_API_PROTO``, or the mirror
of the cri-api repository the workplace keeps."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from pyrkt.api.proto import cri_pb2 as pb

PROTO = Path(pb.__file__).with_name("cri.proto")
CRI_API_MIRROR = Path("/work/.mirror/kubernetes+cri-api/repo")
UPSTREAM_PATH = "pkg/apis/runtime/v1/api.proto"

# The CRI's messages a kubelet sends most, as the wire sees them: name=number:type (* = repeated, map = map)
KEY_MESSAGES = {
    "VersionResponse": "version=1:string runtime_name=2:string runtime_version=3:string runtime_api_version=4:string",
    "ImageSpec": "image=1:string annotations=2:map user_specified_image=18:string runtime_handler=19:string "
                 "image_ref=20:string",
    "AuthConfig": "username=1:string password=2:string auth=3:string server_address=4:string "
                  "identity_token=5:string registry_token=6:string",
    "PullImageRequest": "image=1:ImageSpec auth=2:AuthConfig sandbox_config=3:PodSandboxConfig",
    "PullImageResponse": "image_ref=1:string",
    "Image": "id=1:string repo_tags=2:*string repo_digests=3:*string size=4:uint64 uid=5:Int64Value "
             "username=6:string spec=7:ImageSpec pinned=8:bool",
    "FilesystemUsage": "timestamp=1:int64 fs_id=2:FilesystemIdentifier used_bytes=3:UInt64Value "
                       "inodes_used=4:UInt64Value",
    "RuntimeCondition": "type=1:string status=2:bool reason=3:string message=4:string",
    "PodSandboxConfig": "metadata=1:PodSandboxMetadata hostname=2:string log_directory=3:string "
                        "dns_config=4:DNSConfig port_mappings=5:*PortMapping labels=6:map annotations=7:map "
                        "linux=8:LinuxPodSandboxConfig windows=9:WindowsPodSandboxConfig",
    "PortMapping": "protocol=1:Protocol container_port=2:int32 host_port=3:int32 host_ip=4:string",
    "NamespaceOption": "network=1:NamespaceMode pid=2:NamespaceMode ipc=3:NamespaceMode target_id=4:string "
                       "userns_options=5:UserNamespace",
    "ContainerConfig": "metadata=1:ContainerMetadata image=2:ImageSpec command=3:*string args=4:*string "
                       "working_dir=5:string envs=6:*KeyValue mounts=7:*Mount devices=8:*Device labels=9:map "
                       "annotations=10:map log_path=11:string stdin=12:bool stdin_once=13:bool tty=14:bool "
                       "linux=15:LinuxContainerConfig windows=16:WindowsContainerConfig "
                       "CDI_devices=17:*CDIDevice stop_signal=18:Signal",
    "LinuxContainerResources": "cpu_period=1:int64 cpu_quota=2:int64 cpu_shares=3:int64 "
                               "memory_limit_in_bytes=4:int64 oom_score_adj=5:int64 cpuset_cpus=6:string "
                               "cpuset_mems=7:string hugepage_limits=8:*HugepageLimit unified=9:map "
                               "memory_swap_limit_in_bytes=10:int64",
    "Capability": "add_capabilities=1:*string drop_capabilities=2:*string add_ambient_capabilities=3:*string",
}
SCALARS = {getattr(FieldDescriptor, n): n[5:].lower() for n in dir(FieldDescriptor) if n.startswith("TYPE_")}


def wire(message: str) -> str:
    fields = []
    for f in pb.DESCRIPTOR.message_types_by_name[message].fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            fields.append(f"{f.name}={f.number}:map")
            continue
        kind = f.message_type.name if f.message_type else f.enum_type.name if f.enum_type else SCALARS[f.type]
        fields.append(f"{f.name}={f.number}:{'*' if f.is_repeated else ''}{kind}")
    return " ".join(fields)


def test_package_and_the_key_messages_are_the_cris() -> None:
    assert pb.DESCRIPTOR.package == "runtime.v1"
    assert {m: wire(m) for m in KEY_MESSAGES} == KEY_MESSAGES
    assert [(v.name, v.number) for v in pb.DESCRIPTOR.enum_types_by_name["NamespaceMode"].values] == [
        ("POD", 0), ("CONTAINER", 1), ("NODE", 2), ("TARGET", 3)]
    profile = pb.DESCRIPTOR.message_types_by_name["SecurityProfile"].enum_types_by_name["ProfileType"]
    assert [(v.name, v.number) for v in profile.values] == [("RuntimeDefault", 0), ("Unconfined", 1), ("Localhost", 2)]


def test_services_have_the_calls_a_kubelet_makes() -> None:
    runtime = {m.name for m in pb.DESCRIPTOR.services_by_name["RuntimeService"].methods}
    image = {m.name for m in pb.DESCRIPTOR.services_by_name["ImageService"].methods}
    assert {"Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
            "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
            "ContainerStatus", "UpdateContainerResources", "ReopenContainerLog", "ExecSync", "Exec", "Attach",
            "PortForward", "ContainerStats", "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats",
            "UpdateRuntimeConfig", "Status"} <= runtime
    assert {"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"} <= image


def _descriptor(proto: Path, include: Path, out: Path) -> descriptor_pb2.FileDescriptorProto:
    from grpc_tools import protoc

    assert protoc.main(["protoc", f"-I{include}", f"--descriptor_set_out={out}", str(proto.relative_to(include))]) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def _upstream(tmp_path: Path) -> Path | None:
    given = os.environ.get("PYRKT_CRI_API_PROTO")
    if given:
        return Path(given)
    if not CRI_API_MIRROR.is_dir():
        return None
    r = subprocess.run(["git", "-C", str(CRI_API_MIRROR), "show", f"HEAD:{UPSTREAM_PATH}"], capture_output=True)
    if r.returncode != 0:
        return None
    path = tmp_path / "upstream" / "api.proto"
    path.parent.mkdir()
    path.write_bytes(r.stdout)
    return path


def _shape(fd: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    """Everything the wire and the generated classes depend on: no comments, options or order of declarations."""
    def fields(m: descriptor_pb2.DescriptorProto, prefix: str) -> dict[str, object]:
        out: dict[str, object] = {}
        name = prefix + m.name
        out[name] = sorted((f.name, f.number, f.type, f.label, f.type_name) for f in m.field)
        for e in m.enum_type:
            out[f"{name}.{e.name}"] = sorted((v.name, v.number) for v in e.value)
        for n in m.nested_type:
            out.update(fields(n, name + "."))
        return out

    shape: dict[str, object] = {"package": fd.package}
    for m in fd.message_type:
        shape.update(fields(m, ""))
    for e in fd.enum_type:
        shape[e.name] = sorted((v.name, v.number) for v in e.value)
    for s in fd.service:
        shape[f"service {s.name}"] = sorted((m.name, m.input_type, m.output_type, m.server_streaming,
                                             m.client_streaming) for m in s.method)
    return shape


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (the test extra) is missing")
def test_every_message_field_enum_and_call_is_the_published_apis(tmp_path: Path) -> None:
    upstream = _upstream(tmp_path)
    if upstream is None or not upstream.is_file():
        pytest.skip("the published api.proto is not readable here (set PYRKT_CRI_API_PROTO to a copy)")
    theirs = _shape(_descriptor(upstream, upstream.parent, tmp_path / "upstream.bin"))
    ours = _shape(descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb))
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"cri.proto lacks {missing[:10]}: add them from the published API, then `make proto`"
    assert {k: ours[k] for k in theirs} == theirs


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (the test extra) is missing")
def test_checked_in_generated_code_is_made_from_the_proto(tmp_path: Path) -> None:
    """`make proto` was run after the last change to cri.proto."""
    from grpc_tools import protoc

    src = PROTO.parents[3]
    out = tmp_path / "descriptor.bin"
    assert protoc.main(["protoc", f"-I{src}", f"--descriptor_set_out={out}",
                        str(PROTO.relative_to(src))]) == 0, "protoc failed on cri.proto"
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]

    def clear(messages: object) -> None:
        for message in messages:  # type: ignore[attr-defined]
            for field in message.field:
                field.ClearField("json_name")  # protoc's python output leaves the derived JSON names out
            clear(message.nested_type)

    clear(fresh.message_type)
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh, "cri_pb2.py is out of date: run `make proto`"
