"""Writer threads beside the tar parser: ``FileWriters`` creates and fills an unpack's regular files.

The unpacker (``store.layers``) queues small files here and keeps the order that matters itself:
it asks ``is_pending`` before looking at a path and ``drain``s before removing dirs or setting
dir metadata.
"""

from __future__ import annotations

from collections.abc import Callable

QUEUE_BUDGET = 16 << 20    # bytes of file contents held for the writer threads at most


class FileWriters:
    """A few threads that create and fill the regular files of one unpack.

    Creating an inode is the dearest step of an unpack (on ext4 without a journal it scans the
    recently freed inodes of the group) and, like writing, runs without the GIL, so files are
    written beside the tar parsing, on the other cores. The unpacker keeps the order that
    matters: ``is_pending`` tells it a path may not exist yet, ``drain`` waits for every queued
    file (before a dir is removed or dir metadata applied). The first error is raised by the next
    ``submit`` or ``drain``; later jobs are dropped.
    """

    def __init__(self, threads: int, budget: int | None = None) -> None:
        import threading
        from collections import deque

        self._cond = threading.Condition()
        self._jobs: deque[tuple[str, int, Callable[[], None]]] = deque()
        self._pending: set[str] = set()
        self._queued = 0  # bytes held by queued and running jobs
        self._budget = QUEUE_BUDGET if budget is None else budget
        self._busy = 0
        self._error: BaseException | None = None
        self._closing = False
        self._threads = [threading.Thread(target=self._run, name=f"pyrkt-unpack-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, path: str, size: int, job: Callable[[], None]) -> None:
        """Queue ``job`` (which creates ``path``, holding ``size`` bytes until it has run)."""
        with self._cond:
            while self._queued and self._queued + size > self._budget and self._error is None:
                self._cond.wait()
            self._raise()
            self._jobs.append((path, size, job))
            self._pending.add(path)
            self._queued += size
            self._cond.notify_all()

    def is_pending(self, path: str) -> bool:
        return path in self._pending

    def drain(self) -> None:
        with self._cond:
            while self._jobs or self._busy:
                self._cond.wait()
            self._raise()

    def close(self) -> None:
        """Stop the threads; jobs still queued (after an error) are dropped."""
        with self._cond:
            self._jobs.clear()
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                path, size, job = self._jobs.popleft()
                self._busy += 1
                failed = self._error is not None
            error: BaseException | None = None
            if not failed:
                try:
                    job()
                except BaseException as e:  # handed to the unpacking thread
                    error = e
            with self._cond:
                self._busy -= 1
                self._queued -= size
                self._pending.discard(path)
                if error is not None and self._error is None:
                    self._error = error
                self._cond.notify_all()
