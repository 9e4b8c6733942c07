"""The host side's one way to talk to a mutable pod's init (`app start|stop|rm`): a request
file in the pod dir and SIGUSR1 (podinit.py says what pod init does with it). Small on
purpose: `app start` imports nothing else of stage1."""

from __future__ import annotations

import os
import time

from pyrkt.errors import InvalidState, quote
from pyrkt.kernel import fs, lock
from pyrkt.model import abi
from pyrkt.stage1.poddir import read_pid

SIGUSR1 = 10
RUNNING = "the app is running"  # pod init's answer to `rm` of an app that runs (podinit.PodInit.act)


class AppRunning(InvalidState):
    """Pod init would not forget an app because it runs (a start asked by a command killed
    before its answer may still be under way when the next command looks)."""


class Refused(InvalidState):
    """Pod init's "error:" answer: the app could not be set up or exec'ed (a user or group its
    image lacks, a mount source gone, an executable that does not run), or the pod is stopping.
    What the app asks meets its image or the node badly, for its owner to fix; no fault of
    pyrkt's, so a CRI caller hears FAILED_PRECONDITION, not INTERNAL."""


def tell_pod_init(pod_dir: str, app: str, action: str) -> None:
    """Leave a request for pod init and signal it, waiting for nothing (`app add`'s "prepare":
    pod init sets the app up and holds it before its exec, so that its start is quick). Best
    effort: a pod init gone, or a request it drops, leaves the start to do the whole set-up."""
    try:
        fs.atomic_write(os.path.join(pod_dir, abi.REQUESTS_DIR, app), f"{action} {os.urandom(8).hex()}", sync=False)
        pid = read_pid(pod_dir)
        if pid is not None and lock.is_locked(pod_dir):
            os.kill(pid, SIGUSR1)
    except OSError:
        pass


def ask_pod_init(pod_dir: str, app: str, action: str, timeout: float = 60.0, *, arg: str = "") -> None:
    """Leave a request for a mutable pod's init (see podinit.py), signal it, and wait for its
    answer; an "error:" answer is raised. ``arg``, if any, is what the action takes (a stop's
    seconds from its TERM to its KILL). The request is on disk before the signal: if this
    process dies, pod init still carries it out on the next signal. The wait blocks on a FIFO
    beside the request (``<app>.wake``), which pod init opens and closes once it has written
    the answer, and on a pidfd of pod init (its death)."""
    import select

    where = os.path.join(pod_dir, abi.REQUESTS_DIR, app)
    nonce = os.urandom(8).hex()
    wake = where + ".wake"
    try:
        os.unlink(wake)  # what a killed command left
    except FileNotFoundError:
        pass
    os.mkfifo(wake, 0o600)
    fds = [os.open(wake, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)]
    try:
        fs.atomic_write(where, f"{action} {nonce}" + (f" {arg}" if arg else ""), sync=False)
        pid = read_pid(pod_dir)
        if pid is None or not lock.is_locked(pod_dir):
            raise InvalidState(f"pod {quote(os.path.basename(pod_dir))} isn't currently running")  # rkt's words
        try:
            fds.append(os.pidfd_open(pid))
        except OSError:
            pass  # the checks below find it gone
        os.kill(pid, SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            answer = fs.read_text(where + ".result") or ""
            if answer.startswith(nonce + " "):
                break
            if not lock.is_locked(pod_dir):
                raise InvalidState(f"pod {quote(os.path.basename(pod_dir))} isn't currently running")  # rkt's words
            if time.monotonic() > deadline:
                raise InvalidState(f"pod {os.path.basename(pod_dir)}: no answer from pod init to {action} {app}")
            if not fds:  # woken once already, with no answer for us: poll
                time.sleep(0.002)
            elif select.select(fds, [], [], 0.1)[0]:  # the answer is there, or pod init died
                for fd in fds:
                    os.close(fd)
                fds = []
    finally:
        for fd in fds:
            os.close(fd)
        try:
            os.unlink(wake)
        except FileNotFoundError:
            pass
    raise_refusal(app, answer[len(nonce) + 1:])


def raise_refusal(app: str, why: str) -> None:
    """Pod init's answer about ``app`` (after the nonce): "ok", or "error:WHY", raised as one
    line naming the app once (a failed set-up's line names it already)."""
    if why == "error:" + RUNNING:
        raise AppRunning(f"app {app}: {RUNNING}")
    if why.startswith("error:"):
        why = why.removeprefix("error:").strip()
        raise Refused(why if why.startswith(f"app {app}: ") else f"app {app}: {why}")
