"""What ends a long-running pyrkt service (`cri`, `api-service`, `metadata-service`): SIGINT or
SIGTERM, whichever thread the kernel hands it to.

A process signal goes to any thread that does not block it, and gRPC's and the servers' threads
do not. Python runs its handlers in the main thread only; a main thread asleep in
``threading.Event.wait()`` (a lock) is not woken when another thread took the signal, so the
service would never see it. Here the main thread sleeps in ``select`` on the signal wakeup fd,
which the C-level handler writes to from whichever thread ran it.
"""

from __future__ import annotations

import os
import select
import signal
import threading


class StopSignal(threading.Event):
    """Set by SIGINT or SIGTERM (the handlers are installed by the constructor, which must run
    in the main thread); ``wait()`` without a timeout in the main thread returns once it is."""

    def __init__(self) -> None:
        super().__init__()
        self._wake, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.set()

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None or threading.current_thread() is not threading.main_thread():
            return super().wait(timeout)
        while not self.is_set():  # a handler runs before the next bytecode once select returns
            select.select([self._wake], [], [])
            try:
                os.read(self._wake, 512)
            except BlockingIOError:
                pass
        return True
