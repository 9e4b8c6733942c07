"""The gRPC server of `pyrkt api-service`: rkt's ``v1alpha.PublicAPI``, read-only.

Every call reads the on-disk state afresh, as `list`, `status`, `image list` and `logs` do:
pod dirs through ``pods.info`` (the momentary, non-blocking lock probe that tells running from
exited, as `list`), the store's SQLite index without writing to it, app log files. Nothing is
cached, locked for longer than a read, or changed, so no command ever waits for the service.
PyrktErrors and OSErrors become gRPC status codes here (``status_of``), in one place.

ListenEvents, which rkt left unimplemented, is served as its proto describes it, by sampling the
state (``events``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

from pyrkt import __version__
from pyrkt.api import events, images, pods
from pyrkt.api.logs import LogQuery, stream
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.api.rpc import grpc
from pyrkt.config import Config
from pyrkt.errors import (
    AccessDenied,
    Ambiguous,
    FetchError,
    ImageError,
    IntegrityError,
    InvalidState,
    Locked,
    NotFound,
    PyrktError,
    UsageError,
)
from pyrkt.model.image import Image
from pyrkt.model.pod import AC_VERSION
from pyrkt.pods.pod import Pod
from pyrkt.stage0 import manage
from pyrkt.store import ImageRecord, Store

SERVICE = "v1alpha.PublicAPI"
API_VERSION = "1.0.0-alpha"  # rkt's supportedAPIVersion
DEFAULT_LISTEN = "localhost:15441"
MAX_WORKERS = 16  # concurrent calls; a followed GetLogs holds one until its pod exits
# rkt's --insecure-options, in the order rkt prints them
INSECURE_ORDER = ("image", "tls", "ondisk", "http", "pubkey", "capabilities", "paths", "seccomp")

Request = TypeVar("Request")
Response = TypeVar("Response")


MAX_DETAILS = 1024  # characters of a status message: gRPC drops a reply whose metadata passes 16 KiB


def short(message: str) -> str:
    """A status message cut to ``MAX_DETAILS`` (a request's huge id, echoed, would otherwise make
    the reply too big to send: the caller would see RESOURCE_EXHAUSTED, not the error)."""
    return message if len(message) <= MAX_DETAILS else message[:MAX_DETAILS - 1] + "…"


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status a failed call ends with: the error's class decides the code."""
    code, message = _status_of(exc)
    return code, short(message)


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, (UsageError, Ambiguous)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, InvalidState):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, Locked):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, AccessDenied):  # a registry's: who we are (401), or what we asked (403)
        code = grpc.StatusCode.UNAUTHENTICATED if exc.status == 401 else grpc.StatusCode.PERMISSION_DENIED
        return code, str(exc)
    if isinstance(exc, IntegrityError):  # bytes that do not match their digest or signature
        return grpc.StatusCode.DATA_LOSS, str(exc)
    if isinstance(exc, ImageError):  # an image that cannot serve the request (no such executable, ...)
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, FetchError):  # a registry or server that failed or could not be reached
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, PyrktError):
        return grpc.StatusCode.INTERNAL, str(exc)
    if isinstance(exc, OSError):
        what = f"{exc.filename}: {exc.strerror}" if exc.filename else (exc.strerror or str(exc))
        code = grpc.StatusCode.PERMISSION_DENIED if isinstance(exc, PermissionError) else grpc.StatusCode.INTERNAL
        return code, what
    raise exc


def insecure_flags(options: frozenset[str]) -> str:
    """rkt's spelling of the --insecure-options in force: ``none``, or ``image,tls``…"""
    return ",".join(o for o in INSECURE_ORDER if o in options) or "none"


class PublicAPI:
    """The calls of ``v1alpha.PublicAPI``, each reading the state of ``config``'s data dir."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def GetInfo(self, request: pb.GetInfoRequest, context: grpc.ServicerContext) -> pb.GetInfoResponse:
        c = self.config
        flags = pb.GlobalFlags(dir=c.data_dir, system_config_dir=c.dirs.system, local_config_dir=c.dirs.local,
                               user_config_dir=c.dirs.user or "", insecure_flags=insecure_flags(c.insecure),
                               trust_keys_from_https=c.trust_keys_from_https)
        return pb.GetInfoResponse(info=pb.Info(rkt_version=__version__, appc_version=AC_VERSION,
                                               api_version=API_VERSION, global_flags=flags))

    def ListPods(self, request: pb.ListPodsRequest, context: grpc.ServicerContext) -> pb.ListPodsResponse:
        out = pb.ListPodsResponse()
        for info in manage.list_pods(self.config):  # the pods `list` shows, read as it reads them
            pod = pods.pod_message(info)
            if pods.matches_any(pod, request.filters):
                if request.detail:
                    self._add_manifest(pod, info.uuid)
                out.pods.append(pod)
        return out

    def InspectPod(self, request: pb.InspectPodRequest, context: grpc.ServicerContext) -> pb.InspectPodResponse:
        pod = manage.find_pod(self.config, request.id)
        msg = pods.pod_message(manage.inspect(pod))
        self._add_manifest(msg, pod.uuid)
        return pb.InspectPodResponse(pod=msg)

    def _add_manifest(self, msg: pb.Pod, uuid: str) -> None:
        if msg.state in (pb.POD_STATE_EMBRYO, pb.POD_STATE_UNDEFINED):
            return
        try:
            data = manage.pod_manifest_bytes(Pod.load(self.config.pods_dir, uuid))
        except NotFound:
            return  # deleted since it was listed
        if data is not None:
            msg.manifest = data

    def ListImages(self, request: pb.ListImagesRequest, context: grpc.ServicerContext) -> pb.ListImagesResponse:
        out = pb.ListImagesResponse()
        store = self._store()
        try:
            for rec in store.list():  # in import order, as `image list`
                image = images.image_message(rec, _model(store, rec))
                if images.matches_any(image, request.filters):
                    if request.detail:
                        image.manifest = _manifest(store, rec)
                    out.images.append(image)
        finally:
            store.close()
        return out

    def InspectImage(self, request: pb.InspectImageRequest, context: grpc.ServicerContext) -> pb.InspectImageResponse:
        if not request.id:
            raise UsageError("an image id is required")
        store = self._store()
        try:
            rec = store.find(request.id)  # an id, a unique id prefix or a name, as the image commands
            msg = images.image_message(rec, _model(store, rec), manifest=_manifest(store, rec))
        finally:
            store.close()
        return pb.InspectImageResponse(image=msg)

    def _store(self) -> Store:
        # not Store.open: that clears a dead import's leftovers, and this service changes nothing
        return Store(self.config.store_dir)

    def GetLogs(self, request: pb.GetLogsRequest, context: grpc.ServicerContext) -> Iterator[pb.GetLogsResponse]:
        if request.lines < 0:
            raise UsageError(f"lines must not be negative (got {request.lines})")
        query = LogQuery(pod_id=request.pod_id, app=request.app_name, lines=request.lines, follow=request.follow,
                         since=request.since_time, until=request.until_time)
        for lines in stream(self.config, query, active=context.is_active):
            yield pb.GetLogsResponse(lines=lines)

    def ListenEvents(self, request: pb.ListenEventsRequest,
                     context: grpc.ServicerContext) -> Iterator[pb.ListenEventsResponse]:
        for batch in events.listen(self.config, request.filter, active=context.is_active):
            yield pb.ListenEventsResponse(events=batch)


def _model(store: Store, rec: ImageRecord) -> Image | None:
    try:
        return store.get(rec.id)
    except (NotFound, ValueError, KeyError, TypeError):
        return None  # removed meanwhile, or unreadable: the record alone still says much


def _manifest(store: Store, rec: ImageRecord) -> bytes:
    try:
        return store.manifest(rec.id)
    except PyrktError:
        return b""  # removed meanwhile, or its blob is missing (`image verify` says so)


# -- the server -------------------------------------------------------------------------------

def _unary(fn: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request, context)
        except (PyrktError, OSError) as e:
            context.abort(*status_of(e))
    return call


def _streaming(fn: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(request, context)
        except (PyrktError, OSError) as e:
            context.abort(*status_of(e))
    return call


def handler(api: PublicAPI) -> grpc.GenericRpcHandler:
    """The method table of ``v1alpha.PublicAPI`` (what a generated ``*_pb2_grpc`` would hold)."""
    def unary(fn: Callable[[Any, grpc.ServicerContext], Any], req: Any, resp: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(_unary(fn), request_deserializer=req.FromString,
                                                   response_serializer=resp.SerializeToString)

    def streaming(fn: Callable[[Any, grpc.ServicerContext], Iterator[Any]], req: Any, resp: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_stream_rpc_method_handler(_streaming(fn), request_deserializer=req.FromString,
                                                    response_serializer=resp.SerializeToString)

    return grpc.method_handlers_generic_handler(SERVICE, {
        "GetInfo": unary(api.GetInfo, pb.GetInfoRequest, pb.GetInfoResponse),
        "ListPods": unary(api.ListPods, pb.ListPodsRequest, pb.ListPodsResponse),
        "InspectPod": unary(api.InspectPod, pb.InspectPodRequest, pb.InspectPodResponse),
        "ListImages": unary(api.ListImages, pb.ListImagesRequest, pb.ListImagesResponse),
        "InspectImage": unary(api.InspectImage, pb.InspectImageRequest, pb.InspectImageResponse),
        "ListenEvents": streaming(api.ListenEvents, pb.ListenEventsRequest, pb.ListenEventsResponse),
        "GetLogs": streaming(api.GetLogs, pb.GetLogsRequest, pb.GetLogsResponse),
    })


def check_listen(address: str) -> str:
    """``host:port`` (``[v6]:port``; an empty host is every interface) as gRPC binds it."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen={address!r}: want host:port, e.g. {DEFAULT_LISTEN}")
    return f"{host or '[::]'}:{port}"


class Server:
    """A started server on ``address``; ``port`` is the port it bound (``:0`` picks one)."""

    def __init__(self, config: Config, address: str) -> None:
        # no SO_REUSEPORT (gRPC's default): a second service on a port in use must fail, not share it
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="api"),
                                  handlers=[handler(PublicAPI(config))], options=[("grpc.so_reuseport", 0)])
        try:
            self.port = self.server.add_insecure_port(check_listen(address))
        except RuntimeError:  # gRPC's message only says to set GRPC_VERBOSITY=debug
            self.port = 0
        if not self.port:
            raise PyrktError(f"could not listen on {address}: the address is in use or not available here",
                             hint="--debug shows gRPC's own messages")
        self.server.start()

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait()


def serve(config: Config, address: str, *, say: Callable[[str], None], done: threading.Event) -> None:
    """Serve until ``done`` is set, saying what happens as rkt's api-service does."""
    say("API service starting...")
    server = Server(config, address)
    host = address.rpartition(":")[0]
    say(f"Listening on {host}:{server.port}")
    say("API service running")
    try:
        done.wait()
    finally:
        say("API service exiting...")
        server.stop()
