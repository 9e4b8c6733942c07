"""A service's stop signal wakes its main thread whichever thread the kernel gave it to."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCENARIO = textwrap.dedent("""
    import signal, sys, threading, time
    from pyrkt.cli.stopsignal import StopSignal
    done = StopSignal() if sys.argv[1] == "stopsignal" else threading.Event()
    if sys.argv[1] == "event":
        signal.signal(signal.SIGTERM, lambda *a: done.set())
    def other_thread():
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # taken by this thread, not main
    threading.Thread(target=other_thread, daemon=True).start()
    done.wait()
    print("stopped")
""")


def run(kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCENARIO, kind], capture_output=True, text=True, timeout=10,
                          env={"PYTHONPATH": ":".join(sys.path)})


def test_a_signal_taken_by_another_thread_ends_the_wait() -> None:
    done = run("stopsignal")
    assert (done.returncode, done.stdout) == (0, "stopped\n"), done.stderr


def test_a_plain_event_would_sleep_through_it() -> None:
    """Why StopSignal exists: what `pyrkt cri` did before (a SIGTERM a gRPC thread took left it
    running)."""
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", SCENARIO, "event"], capture_output=True, timeout=1.5,
                       env={"PYTHONPATH": ":".join(sys.path)})
