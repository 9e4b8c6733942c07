"""The API's messages are rkt's on the wire, and the checked-in generated code is the .proto's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from pyrkt.api.proto import v1alpha_pb2 as pb

PROTO = Path(pb.__file__).with_name("v1alpha.proto")

# rkt's api/v1alpha/api.proto as the wire sees it: field name=number:type (* = repeated)
RKT_MESSAGES = {
    "ImageFormat": "type=1:ImageType version=2:string",
    "Image": "base_format=1:ImageFormat id=2:string name=3:string version=4:string import_timestamp=5:int64 "
             "manifest=6:bytes size=7:int64 annotations=8:*KeyValue labels=9:*KeyValue",
    "Network": "name=1:string ipv4=2:string ipv6=3:string",
    "App": "name=1:string image=2:Image state=3:AppState exit_code=4:sint32 annotations=5:*KeyValue",
    "Pod": "id=1:string pid=2:sint32 state=3:PodState apps=4:*App networks=5:*Network manifest=6:bytes "
           "annotations=7:*KeyValue cgroup=8:string created_at=9:int64 started_at=10:int64 gc_marked_at=11:int64",
    "KeyValue": "Key=1:string value=2:string",
    "PodFilter": "ids=1:*string states=2:*PodState app_names=3:*string image_ids=4:*string network_names=5:*string "
                 "annotations=6:*KeyValue cgroups=7:*string pod_sub_cgroups=8:*string",
    "ImageFilter": "ids=1:*string prefixes=2:*string base_names=3:*string keywords=4:*string labels=5:*KeyValue "
                   "imported_after=6:int64 imported_before=7:int64 annotations=8:*KeyValue full_names=9:*string",
    "GlobalFlags": "dir=1:string system_config_dir=2:string local_config_dir=3:string user_config_dir=4:string "
                   "insecure_flags=5:string trust_keys_from_https=6:bool",
    "Info": "rkt_version=1:string appc_version=2:string api_version=3:string global_flags=4:GlobalFlags",
    "Event": "type=1:EventType id=2:string from=3:string time=4:int64 data=5:*KeyValue",
    "EventFilter": "types=1:*EventType ids=2:*string names=3:*string since_time=4:int64 until_time=5:int64",
    "GetInfoRequest": "",
    "GetInfoResponse": "info=1:Info",
    "ListPodsRequest": "filters=1:*PodFilter detail=2:bool",
    "ListPodsResponse": "pods=1:*Pod",
    "InspectPodRequest": "id=1:string",
    "InspectPodResponse": "pod=1:Pod",
    "ListImagesRequest": "filters=1:*ImageFilter detail=2:bool",
    "ListImagesResponse": "images=1:*Image",
    "InspectImageRequest": "id=1:string",
    "InspectImageResponse": "image=1:Image",
    "ListenEventsRequest": "filter=1:EventFilter",
    "ListenEventsResponse": "events=1:*Event",
    "GetLogsRequest": "pod_id=1:string app_name=2:string lines=3:int32 follow=4:bool since_time=5:int64 "
                      "until_time=6:int64",
    "GetLogsResponse": "lines=1:*string",
}
RKT_ENUMS = {
    "ImageType": ["IMAGE_TYPE_UNDEFINED", "IMAGE_TYPE_APPC", "IMAGE_TYPE_DOCKER", "IMAGE_TYPE_OCI"],
    "AppState": ["APP_STATE_UNDEFINED", "APP_STATE_RUNNING", "APP_STATE_EXITED"],
    "PodState": ["POD_STATE_UNDEFINED", "POD_STATE_EMBRYO", "POD_STATE_PREPARING", "POD_STATE_PREPARED",
                 "POD_STATE_RUNNING", "POD_STATE_ABORTED_PREPARE", "POD_STATE_EXITED", "POD_STATE_DELETING",
                 "POD_STATE_GARBAGE"],
    "EventType": ["EVENT_TYPE_UNDEFINED", "EVENT_TYPE_POD_PREPARED", "EVENT_TYPE_POD_PREPARE_ABORTED",
                  "EVENT_TYPE_POD_STARTED", "EVENT_TYPE_POD_EXITED", "EVENT_TYPE_POD_GARBAGE_COLLECTED",
                  "EVENT_TYPE_APP_STARTED", "EVENT_TYPE_APP_EXITED", "EVENT_TYPE_IMAGE_IMPORTED",
                  "EVENT_TYPE_IMAGE_REMOVED"],
}
RKT_METHODS = {  # name: (request, response, server streaming)
    "GetInfo": ("GetInfoRequest", "GetInfoResponse", False),
    "ListPods": ("ListPodsRequest", "ListPodsResponse", False),
    "InspectPod": ("InspectPodRequest", "InspectPodResponse", False),
    "ListImages": ("ListImagesRequest", "ListImagesResponse", False),
    "InspectImage": ("InspectImageRequest", "InspectImageResponse", False),
    "ListenEvents": ("ListenEventsRequest", "ListenEventsResponse", True),
    "GetLogs": ("GetLogsRequest", "GetLogsResponse", True),
}
SCALARS = {getattr(FieldDescriptor, n): n[5:].lower() for n in dir(FieldDescriptor) if n.startswith("TYPE_")}


def wire(message: str) -> str:
    fields = []
    for f in pb.DESCRIPTOR.message_types_by_name[message].fields:
        kind = f.message_type.name if f.message_type else f.enum_type.name if f.enum_type else SCALARS[f.type]
        fields.append(f"{f.name}={f.number}:{'*' if f.is_repeated else ''}{kind}")
    return " ".join(fields)


def test_package_and_every_message_field_number_and_type_are_rkts() -> None:
    assert pb.DESCRIPTOR.package == "v1alpha"
    assert set(pb.DESCRIPTOR.message_types_by_name) == set(RKT_MESSAGES)
    assert {m: wire(m) for m in RKT_MESSAGES} == RKT_MESSAGES


def test_enums_number_their_values_as_rkt() -> None:
    assert set(pb.DESCRIPTOR.enum_types_by_name) == set(RKT_ENUMS)
    for name, values in RKT_ENUMS.items():
        assert [(v.name, v.number) for v in pb.DESCRIPTOR.enum_types_by_name[name].values] == [
            (v, i) for i, v in enumerate(values)]


def test_service_is_rkts_public_api() -> None:
    service = pb.DESCRIPTOR.services_by_name["PublicAPI"]
    assert service.full_name == "v1alpha.PublicAPI"
    assert {m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods} == RKT_METHODS
    assert not any(m.client_streaming for m in service.methods)


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (the test extra) is missing")
def test_checked_in_generated_code_is_made_from_the_proto(tmp_path: Path) -> None:
    """`make proto` was run after the last change to v1alpha.proto."""
    from grpc_tools import protoc

    src = PROTO.parents[3]
    out = tmp_path / "descriptor.bin"
    assert protoc.main(["protoc", f"-I{src}", f"--descriptor_set_out={out}",
                        str(PROTO.relative_to(src))]) == 0, "protoc failed on v1alpha.proto"
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in fresh.message_type:
        for field in message.field:
            field.ClearField("json_name")  # protoc's python output leaves the derived JSON names out
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh, "v1alpha_pb2.py is out of date: run `make proto`"


def test_generated_code_loads_with_the_installed_protobuf() -> None:
    assert "pyrkt.api.proto.v1alpha_pb2" in sys.modules
    assert pb.Pod(id="x", pid=-1).SerializeToString() == b"\n\x01x\x10\x01"  # sint32 -1 is zigzag 1
