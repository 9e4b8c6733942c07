"""The gRPC server of `pyrkt cri`: ``runtime.v1.ImageService`` and ``runtime.v1.RuntimeService``
on a unix socket, as a kubelet's ``--container-runtime-endpoint`` expects.

Every call reads (and writes) the on-disk state afresh: the store, ``<data dir>/cri``. Errors
become gRPC status codes in one place (``_unary``); an unexpected exception is an INTERNAL
status with one line, never a traceback to the caller. RuntimeService's sandbox and container
calls are pods.py's; a call not wired yet answers UNIMPLEMENTED, naming itself.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

from pyrkt.api.cri import images, runtime, streaming
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.api.rpc import grpc
from pyrkt.api.service import short, status_of
from pyrkt.config import Config
from pyrkt.errors import PyrktError, UsageError
from pyrkt.store import Store

RUNTIME_SERVICE = "runtime.v1.RuntimeService"
IMAGE_SERVICE = "runtime.v1.ImageService"
DEFAULT_LISTEN = "unix:///run/pyrkt/cri.sock"
SOCKET_MODE = 0o660
MAX_SOCKET_PATH = 107  # bytes: sockaddr_un's sun_path, less its NUL
MAX_WORKERS = 16
STREAM_BATCH = 100  # images per StreamImagesResponse


class ImageService:
    """The calls of ``runtime.v1.ImageService`` over ``config``'s store."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _read(self) -> Store:
        return Store(self.config.store_dir)  # not Store.open: reading needs no clean-up of dead imports

    def ListImages(self, request: pb.ListImagesRequest, context: grpc.ServicerContext) -> pb.ListImagesResponse:
        store = self._read()
        try:
            return pb.ListImagesResponse(images=images.list_images(store, request.filter.image.image))
        finally:
            store.close()

    def StreamImages(self, request: pb.StreamImagesRequest,
                     context: grpc.ServicerContext) -> Iterator[pb.StreamImagesResponse]:
        store = self._read()
        try:
            found = images.list_images(store, request.filter.image.image)
        finally:
            store.close()
        for i in range(0, len(found), STREAM_BATCH):
            yield pb.StreamImagesResponse(images=found[i:i + STREAM_BATCH])

    def ImageStatus(self, request: pb.ImageStatusRequest, context: grpc.ServicerContext) -> pb.ImageStatusResponse:
        """An image the store does not hold is an answer without ``image``, as the CRI asks."""
        store = self._read()
        try:
            rec = images.find(store, request.image.image)
            if rec is None:
                return pb.ImageStatusResponse()
            out = pb.ImageStatusResponse(image=images.image_message(store, rec))
            if request.verbose:
                out.info.update(images.status_info(store, rec))
            return out
        finally:
            store.close()

    def PullImage(self, request: pb.PullImageRequest, context: grpc.ServicerContext) -> pb.PullImageResponse:
        from pyrkt.stage0.images import open_store

        store = open_store(self.config, write=True)
        try:
            image = images.pull(self.config, store, request.image.image, request.auth,
                                on_end=context.add_callback)  # the kubelet gave up, or we stop
        finally:
            store.close()
        return pb.PullImageResponse(image_ref=image.id)

    def RemoveImage(self, request: pb.RemoveImageRequest, context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        """Idempotent, as the CRI asks: an image that is not there is removed already. Layers a
        pod still uses stay until `image gc` finds them unused, as `image rm`."""
        from pyrkt.stage0.images import open_store, pods_in_use

        store = open_store(self.config, write=True)
        try:
            rec = images.find(store, request.image.image)
            if rec is not None:
                store.remove(rec.id, in_use=lambda: pods_in_use(self.config, store))
        finally:
            store.close()
        return pb.RemoveImageResponse()

    def ImageFsInfo(self, request: pb.ImageFsInfoRequest, context: grpc.ServicerContext) -> pb.ImageFsInfoResponse:
        return pb.ImageFsInfoResponse(image_filesystems=[images.fs_usage(self.config.store_dir)])


class RuntimeService:
    """The calls of ``runtime.v1.RuntimeService``: sandboxes and containers through ``pods``."""

    def __init__(self, config: Config, settings: runtime.Settings) -> None:
        from pyrkt.api.cri.pods import Pods

        self.settings = settings
        self.pods = Pods(config, settings, pyrkt_argv(config))
        self.stream = streaming.StreamServer(settings.stream_addr, streaming.Runner(
            config, pyrkt_argv(config), self.pods.sandbox_pid))

    def Version(self, request: pb.VersionRequest, context: grpc.ServicerContext) -> pb.VersionResponse:
        return runtime.version()

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        return runtime.status(self.settings, verbose=request.verbose,
                              stream_address=self.stream.base.removeprefix("http://"))

    def UpdateRuntimeConfig(self, request: pb.UpdateRuntimeConfigRequest,
                            context: grpc.ServicerContext) -> pb.UpdateRuntimeConfigResponse:
        runtime.update_runtime_config(self.settings.state_dir, request)
        return pb.UpdateRuntimeConfigResponse()

    def RuntimeConfig(self, request: pb.RuntimeConfigRequest,
                      context: grpc.ServicerContext) -> pb.RuntimeConfigResponse:
        return runtime.runtime_config()


    # -- sandboxes --------------------------------------------------------------------------

    def RunPodSandbox(self, request: pb.RunPodSandboxRequest,
                      context: grpc.ServicerContext) -> pb.RunPodSandboxResponse:
        return pb.RunPodSandboxResponse(pod_sandbox_id=self.pods.run_sandbox(request))

    def StopPodSandbox(self, request: pb.StopPodSandboxRequest,
                       context: grpc.ServicerContext) -> pb.StopPodSandboxResponse:
        self.pods.stop_sandbox(request.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    def RemovePodSandbox(self, request: pb.RemovePodSandboxRequest,
                         context: grpc.ServicerContext) -> pb.RemovePodSandboxResponse:
        self.pods.remove_sandbox(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    def PodSandboxStatus(self, request: pb.PodSandboxStatusRequest,
                         context: grpc.ServicerContext) -> pb.PodSandboxStatusResponse:
        return pb.PodSandboxStatusResponse(status=self.pods.sandbox_status(request.pod_sandbox_id))

    def ListPodSandbox(self, request: pb.ListPodSandboxRequest,
                       context: grpc.ServicerContext) -> pb.ListPodSandboxResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListPodSandboxResponse(items=self.pods.list_sandboxes(f))

    # -- containers -------------------------------------------------------------------------

    def CreateContainer(self, request: pb.CreateContainerRequest,
                        context: grpc.ServicerContext) -> pb.CreateContainerResponse:
        return pb.CreateContainerResponse(container_id=self.pods.create_container(request))

    def StartContainer(self, request: pb.StartContainerRequest,
                       context: grpc.ServicerContext) -> pb.StartContainerResponse:
        self.pods.start_container(request.container_id)
        return pb.StartContainerResponse()

    def StopContainer(self, request: pb.StopContainerRequest,
                      context: grpc.ServicerContext) -> pb.StopContainerResponse:
        self.pods.stop_container(request.container_id, request.timeout)
        return pb.StopContainerResponse()

    def RemoveContainer(self, request: pb.RemoveContainerRequest,
                        context: grpc.ServicerContext) -> pb.RemoveContainerResponse:
        self.pods.remove_container(request.container_id)
        return pb.RemoveContainerResponse()

    def ListContainers(self, request: pb.ListContainersRequest,
                       context: grpc.ServicerContext) -> pb.ListContainersResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListContainersResponse(containers=self.pods.list_containers(f))

    def ContainerStatus(self, request: pb.ContainerStatusRequest,
                        context: grpc.ServicerContext) -> pb.ContainerStatusResponse:
        return pb.ContainerStatusResponse(status=self.pods.container_status(request.container_id))

    def UpdateContainerResources(self, request: pb.UpdateContainerResourcesRequest,
                                 context: grpc.ServicerContext) -> pb.UpdateContainerResourcesResponse:
        if request.HasField("windows"):
            raise UsageError("windows resources: this is a Linux node")
        self.pods.update_resources(request.container_id, request.linux)
        return pb.UpdateContainerResourcesResponse()

    def ReopenContainerLog(self, request: pb.ReopenContainerLogRequest,
                           context: grpc.ServicerContext) -> pb.ReopenContainerLogResponse:
        self.pods.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    def ContainerStats(self, request: pb.ContainerStatsRequest,
                       context: grpc.ServicerContext) -> pb.ContainerStatsResponse:
        return pb.ContainerStatsResponse(stats=self.pods.one_container_stats(request.container_id))

    def ListContainerStats(self, request: pb.ListContainerStatsRequest,
                           context: grpc.ServicerContext) -> pb.ListContainerStatsResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListContainerStatsResponse(stats=self.pods.list_container_stats(f))

    def PodSandboxStats(self, request: pb.PodSandboxStatsRequest,
                        context: grpc.ServicerContext) -> pb.PodSandboxStatsResponse:
        return pb.PodSandboxStatsResponse(stats=self.pods.one_sandbox_stats(request.pod_sandbox_id))

    def ListPodSandboxStats(self, request: pb.ListPodSandboxStatsRequest,
                            context: grpc.ServicerContext) -> pb.ListPodSandboxStatsResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListPodSandboxStatsResponse(stats=self.pods.list_sandbox_stats(f))

    def GetContainerEvents(self, request: pb.GetEventsRequest,
                           context: grpc.ServicerContext) -> Iterator[pb.ContainerEventResponse]:
        from pyrkt.api.cri import events

        return events.watch(self.pods, active=context.is_active)

    def ExecSync(self, request: pb.ExecSyncRequest, context: grpc.ServicerContext) -> pb.ExecSyncResponse:
        return self.pods.exec_sync(request.container_id, list(request.cmd), request.timeout)

    # -- streaming: a URL of the streaming server, whose token the kubelet's client brings ----

    def Exec(self, request: pb.ExecRequest, context: grpc.ServicerContext) -> pb.ExecResponse:
        from pyrkt.api.cri.pods import check_command

        check_command("Exec", list(request.cmd))
        streaming.check_exec(list(request.cmd), request.tty, request.stdin, request.stdout, request.stderr)
        uuid, app = self.pods.running_app(request.container_id)
        return pb.ExecResponse(url=self.stream.url(streaming.Request(
            "exec", uuid=uuid, app=app, cmd=tuple(request.cmd), tty=request.tty, stdin=request.stdin,
            stdout=request.stdout, stderr=request.stderr)))

    def Attach(self, request: pb.AttachRequest, context: grpc.ServicerContext) -> pb.AttachResponse:
        streaming.check_exec([], request.tty, request.stdin, request.stdout, request.stderr)
        uuid, app = self.pods.attachable_app(request.container_id)
        return pb.AttachResponse(url=self.stream.url(streaming.Request(
            "attach", uuid=uuid, app=app, tty=request.tty, stdin=request.stdin, stdout=request.stdout,
            stderr=request.stderr)))

    def PortForward(self, request: pb.PortForwardRequest, context: grpc.ServicerContext) -> pb.PortForwardResponse:
        for port in request.port:
            if not 0 < port < 65536:
                raise UsageError(f"PortForward: invalid port {port}")
        self.pods.sandbox_pid(request.pod_sandbox_id)
        return pb.PortForwardResponse(url=self.stream.url(streaming.Request(
            "portforward", sandbox=request.pod_sandbox_id, ports=tuple(request.port))))


def pyrkt_argv(config: Config) -> list[str]:
    """This pyrkt, with the server's data and config dirs (the user config dir is the CRI's)."""
    argv = [sys.executable, "-m", "pyrkt", f"--dir={config.data_dir}", f"--local-config={config.dirs.local}",
            f"--system-config={config.dirs.system}"]
    if config.insecure:
        argv.append(f"--insecure-options={','.join(sorted(config.insecure))}")
    return argv


def not_wired(name: str) -> str:
    return (f"{name} is not implemented by pyrkt yet (docs/commands.md, Kubernetes CRI, says what the "
            "CRI server does and does not do)")


# -- the method tables ------------------------------------------------------------------------

def _abort(context: grpc.ServicerContext, name: str, e: BaseException) -> None:
    from pyrkt.api.cri.pods import DeadlineExceeded

    if isinstance(e, DeadlineExceeded):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, short(str(e)))
    if isinstance(e, streaming.ResourceExhausted):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, short(str(e)))
    if isinstance(e, (PyrktError, OSError)):
        context.abort(*status_of(e))
    message = short(f"{name}: internal error: {type(e).__name__}: {e}")
    sys.stderr.write(f"pyrkt cri: {message}\n")
    context.abort(grpc.StatusCode.INTERNAL, message)


ID_FIELDS = ("pod_sandbox_id", "container_id")  # a request's fields that name one sandbox or container


def id_fields(method: Any) -> tuple[str, ...]:
    """The id fields of a method's request (its descriptor's): each must be given."""
    return tuple(f.name for f in method.input_type.fields if f.name in ID_FIELDS)


def check_ids(request: Any, fields: tuple[str, ...]) -> None:
    """An empty id names no sandbox or container: INVALID_ARGUMENT naming the field, for every
    call, before any is looked up (an unknown one is the call's: NOT_FOUND, or for StopPodSandbox
    and RemovePodSandbox, which the kubelet repeats for sandboxes gone, success)."""
    for field in fields:
        if not getattr(request, field):
            raise UsageError(f"{field} is empty")


def _unary(name: str, fn: Callable[[Any, grpc.ServicerContext], Any],
           ids: tuple[str, ...] = ()) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            check_ids(request, ids)
            return fn(request, context)
        except Exception as e:  # noqa: BLE001 (every failure becomes a status, never a traceback)
            _abort(context, name, e)
    return call


def _streaming(name: str, fn: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
               ids: tuple[str, ...] = ()) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            check_ids(request, ids)
            yield from fn(request, context)
        except Exception as e:  # noqa: BLE001
            _abort(context, name, e)
    return call


def _unimplemented(name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, not_wired(name))
    return call


def method_table(service: str, impl: object) -> grpc.GenericRpcHandler:
    """Every method the .proto declares for ``service``: ``impl``'s where it has one, else an
    UNIMPLEMENTED answer naming the call (so that no call is ever silently unknown)."""
    descriptor = pb.DESCRIPTOR.services_by_name[service.rpartition(".")[2]]
    table: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        req = getattr(pb, method.input_type.name)
        resp = getattr(pb, method.output_type.name)
        fn = getattr(impl, method.name, None)
        kwargs = {"request_deserializer": req.FromString, "response_serializer": resp.SerializeToString}
        if fn is None:  # not wrapped: the wrappers would take the abort for a failure
            table[method.name] = (grpc.unary_stream_rpc_method_handler if method.server_streaming
                                  else grpc.unary_unary_rpc_method_handler)(_unimplemented(method.name), **kwargs)
        elif method.server_streaming:
            table[method.name] = grpc.unary_stream_rpc_method_handler(_streaming(method.name, fn, id_fields(method)),
                                                                      **kwargs)
        else:
            table[method.name] = grpc.unary_unary_rpc_method_handler(_unary(method.name, fn, id_fields(method)),
                                                                     **kwargs)
    return grpc.method_handlers_generic_handler(service, table)


# -- the socket -------------------------------------------------------------------------------

def socket_path(listen: str) -> str:
    """The path of ``unix:///path`` (or ``unix:/path``); the only kind of endpoint served."""
    if not listen.startswith("unix:"):
        raise UsageError(f"--listen={listen}: want a unix socket, unix:///path/to/cri.sock")
    path = listen[len("unix:"):]
    if path.startswith("//"):
        path = path[2:]
    if not path.startswith("/"):
        raise UsageError(f"--listen={listen}: want an absolute path, unix:///path/to/cri.sock")
    path = os.path.normpath(path)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:  # the kubelet could not reach it either
        raise UsageError(f"--listen={listen}: the path is {len(os.fsencode(path))} bytes, longer than a unix "
                         f"socket's may be ({MAX_SOCKET_PATH})")
    return path


def clear_stale_socket(path: str) -> None:
    """Remove a socket no server listens on any more (left by a killed server); refuse a live
    one, and anything at ``path`` that is not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise PyrktError(f"cannot listen on {path}: it exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise PyrktError(f"cannot listen on {path}: {e.strerror or e}") from None
        else:
            raise PyrktError(f"cannot listen on {path}: a server is listening there already")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Server:
    """The started server on a unix socket (made ``0660``, owned by root), its dir created."""

    def __init__(self, config: Config, settings: runtime.Settings, listen: str) -> None:
        self.path = socket_path(listen)
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        except OSError as e:
            why = "not a directory" if isinstance(e, FileExistsError) else e.strerror
            raise PyrktError(f"cannot listen on {self.path}: cannot make {os.path.dirname(self.path)}: {why}") from None
        clear_stale_socket(self.path)
        self.runtime = RuntimeService(config, settings)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="cri"),
                                  handlers=[method_table(RUNTIME_SERVICE, self.runtime),
                                            method_table(IMAGE_SERVICE, ImageService(config))])
        old = os.umask(0o117)  # the socket is never, even for a moment, open to every local user
        try:
            bound = self.server.add_insecure_port(f"unix://{self.path}")
        except RuntimeError:
            bound = 0
        finally:
            os.umask(old)
        if not bound:
            raise PyrktError(f"could not listen on {self.path}", hint="--debug shows gRPC's own messages")
        self.server.start()
        self.runtime.stream.start()
        os.chmod(self.path, SOCKET_MODE)
        if os.geteuid() == 0:
            os.chown(self.path, 0, 0)

    def stop(self, grace: float = 1.0) -> None:
        self.runtime.stream.stop()
        self.server.stop(grace).wait()
        self.runtime.pods.launcher.close()
        try:
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def serve(config: Config, settings: runtime.Settings, listen: str, *, say: Callable[[str], None],
          done: threading.Event) -> None:
    """Serve until ``done`` is set."""
    server = Server(config, settings, listen)
    say(f"pyrkt cri: serving runtime.v1 on unix://{server.path}")
    say(f"pyrkt cri: streaming (exec, attach, port-forward) on {server.runtime.stream.base}")
    try:
        done.wait()
    finally:
        say("pyrkt cri: exiting")
        server.stop()
