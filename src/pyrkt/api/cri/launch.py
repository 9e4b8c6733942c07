"""Start a sandbox's pod in a process of its own: ``python -m pyrkt.api.cri.launch``, the
config, pod request and run options pickled on stdin (from the CRI server, root's own pipe).

Pod init is forked from the process that starts it; forked from the gRPC server, it would keep
the server's listening socket and connections open for the pod's whole life. The answer, on
stdout, is JSON: ``{"uuid": ...}`` or ``{"error": CLASS, "message": ...}``.

The server keeps one launcher started ahead (``Launcher``): its interpreter has started and
imported the stage0 code while it waits for its request, so a RunPodSandbox does not wait for
that (~30 ms here). A launcher whose stdin closes before it got a request (the server ended)
exits quietly.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import threading

from pyrkt import errors

# what launching a sandbox imports (the request's classes, the stage0, stage1, store and network
# code), imported by a spare launcher while it waits for its request
PRIMED = ("pyrkt.stage0.sandbox", "pyrkt.stage0.run", "pyrkt.stage0.prepare", "pyrkt.stage0.images",
          "pyrkt.stage0.layers", "pyrkt.stage1.flavor", "pyrkt.stage1.default", "pyrkt.stage1.podinit",
          "pyrkt.stage1.app", "pyrkt.stage1.appio", "pyrkt.stage1.initroot", "pyrkt.stage1.mutable",
          "pyrkt.network.setup", "pyrkt.network.dns", "pyrkt.store.lookup", "pyrkt.store.overlay",
          "pyrkt.store.staging", "pyrkt.kernel.api", "pyrkt.kernel.inroot", "pyrkt.kernel.seccomp")


def main() -> int:
    import importlib

    for name in PRIMED:
        importlib.import_module(name)
    from pyrkt.stage0 import sandbox

    request = sys.stdin.buffer.read()
    if not request:
        return 0  # a spare launcher the server no longer needs
    config, pod, run = pickle.loads(request)  # noqa: S301 (the server's own pipe)
    out = io.StringIO()
    try:
        sandbox.sandbox(config, pod, run, out)
    except errors.PyrktError as e:
        answer = {"error": type(e).__name__, "message": str(e)}
    except OSError as e:
        what = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
        answer = {"error": "PyrktError", "message": what}
    else:
        answer = {"uuid": out.getvalue().strip()}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


class Launcher:
    """Sandbox launches, each in a process of its own, one of them kept started ahead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._closed = False

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "pyrkt.api.cri.launch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)

    def launch(self, request: bytes) -> str:
        """Hand the pickled (config, pod request, run options) to a launcher; the UUID it
        answered, or its error raised again. Then start the next one ahead."""
        with self._lock:
            proc, self._spare = self._spare, None
        if proc is None or proc.poll() is not None:
            if proc is not None:
                proc.wait()
            proc = self._start()
        out, _ = proc.communicate(request)
        with self._lock:
            if self._spare is None and not self._closed:
                self._spare = self._start()
        return raise_answer(out.decode(errors="replace"))

    def close(self) -> None:
        """End the spare launcher (it reads an empty request and exits)."""
        with self._lock:
            spare, self._spare, self._closed = self._spare, None, True
        if spare is not None:
            try:
                spare.communicate(b"", timeout=10)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()


def raise_answer(text: str) -> str:
    """The UUID a launch answered, or its error raised again as its class."""
    try:
        answer = json.loads(text)
    except ValueError:
        raise errors.PyrktError(f"the sandbox launcher gave no answer ({text.strip()[:200]!r})") from None
    if "uuid" in answer:
        return str(answer["uuid"])
    cls = getattr(errors, str(answer.get("error")), errors.PyrktError)
    if not (isinstance(cls, type) and issubclass(cls, errors.PyrktError)):
        cls = errors.PyrktError
    raise cls(str(answer.get("message")))


if __name__ == "__main__":
    sys.exit(main())
