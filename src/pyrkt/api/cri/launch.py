"""Start a sandbox's pod in a process of its own: ``python -m pyrkt.api.cri.launch``, the
config, pod request and run options pickled on stdin (from the CRI server, root's own pipe).

Pod init is forked from the process that starts it; forked from the gRPC server, it would keep
the server's listening socket and connections open for the pod's whole life. The answer, on
stdout, is JSON: ``{"uuid": ...}`` or ``{"error": CLASS, "message": ...}``.
"""

from __future__ import annotations

import io
import json
import pickle
import sys

from pyrkt import errors


def main() -> int:
    from pyrkt.stage0 import sandbox

    config, pod, run = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (the server's own pipe)
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
