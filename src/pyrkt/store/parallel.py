"""Unpacking several layers at once, in forked processes: ``unpack_all``, ``ForkedUnpacks``.

Each child runs ``store.layers.unpack`` for one layer and pickles its result back through a
pipe; a streamed child reads its blob from a pipe a download fills (``BlobFeed``). Children
unpack without ``lowers``: ``adopt_lower_dirs`` gives their implicit dirs the lower layers'
attributes afterwards.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, cast

from pyrkt.errors import ImageError
from pyrkt.model.values import Value
from pyrkt.store.layers import CHUNK, Unpacker, unpack, write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.store.limits import ImportBudget

FORKED_WRITER_THREADS = 1  # the writer threads in each of unpack_all's processes, which share the cores


class UnpackJob(Value):
    """One layer to unpack (the arguments of ``unpack`` but ``lowers``, see ``unpack_all``);
    ``blob`` None: its bytes come through a pipe (``ForkedUnpacks.stream``)."""

    blob: Path | None
    dest: Path
    diff_id: str
    layer: str
    aci: bool = False


def unpack_all(jobs: list[UnpackJob], *, workers: int | None = None,
               budget: ImportBudget | None = None) -> list[tuple[int, set[str]]]:
    """``unpack`` each job at once, in up to ``workers`` (default: a core each) child processes;
    returns each job's (size, implicit dirs). The first error is raised once every child ended.

    Tar parsing holds the GIL, so layers are unpacked in forked processes rather than threads
    (only when the caller runs no other thread, which could hold a lock the child needs;
    otherwise one by one, here). They run without ``lowers``: give each job's implicit dirs
    their lower layers' attributes with ``adopt_lower_dirs`` afterwards, bottom layer first.
    ``budget``: the import's, which every child draws on.
    """
    import threading

    if workers is None:
        workers = len(os.sched_getaffinity(0))
    if threading.active_count() > 1:
        workers = 1  # forking beside other threads could copy a lock one of them holds
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            implicit: set[str] = set()
            size = unpack(cast(Path, job.blob), job.dest, diff_id=job.diff_id, layer=job.layer, aci=job.aci,
                          implicit_dirs=implicit, budget=budget)
            results.append((size, implicit))
        return results
    return ForkedUnpacks(jobs, workers, budget=budget).run()


class ForkedUnpacks:
    """Children that each unpack one layer and send back a pickled result through a pipe.

    ``run`` starts the jobs ``workers`` at a time, largest blob first, and collects them.
    ``stream`` starts every job at once, each child reading its blob's bytes from a pipe as
    a download writes them into the job's ``BlobFeed``; ``run`` then collects. ``close`` kills
    and reaps what still runs (after an error or an interrupt). Fork only while no other
    thread runs: a child could inherit a lock held by one.
    """

    def __init__(self, jobs: list[UnpackJob], workers: int, *, budget: ImportBudget | None = None) -> None:
        import tarfile  # noqa: F401  -- what a child needs is imported before it is forked
        import zlib  # noqa: F401

        self.jobs = jobs
        self.workers = workers
        self.running: dict[int, tuple[int, int, list[bytes]]] = {}  # result fd -> (job index, pid, data)
        self.feeds: dict[int, BlobFeed] = {}  # job index -> where its blob's bytes go
        self.started: set[int] = set()
        self.results: dict[int, tuple[int, set[str]]] = {}
        self.error: BaseException | None = None
        self.budget = budget
        self.slots: dict[int, int] = {}  # result fd -> the child's slot of the budget

    def stream(self) -> dict[int, BlobFeed]:
        for index in range(len(self.jobs)):
            self.start(index, stream=True)
        return dict(self.feeds)

    def run(self) -> list[tuple[int, set[str]]]:
        """Start the jobs not started yet and collect all; streamed ones are past their input."""
        import selectors

        for feed in self.feeds.values():
            feed.close()
        # Largest blobs first: the last to start are the shortest.
        todo = sorted((i for i in range(len(self.jobs)) if i not in self.started),
                      key=lambda i: os.path.getsize(cast(Path, self.jobs[i].blob)), reverse=True)
        sel = selectors.DefaultSelector()
        try:
            for fd in self.running:
                sel.register(fd, selectors.EVENT_READ)
            while todo or self.running:
                while todo and len(self.running) < self.workers:
                    sel.register(self.start(todo.pop(0)), selectors.EVENT_READ)
                for key, _ in sel.select():
                    fd = int(key.fd)
                    chunk = os.read(fd, 1 << 16)
                    if chunk:
                        self.running[fd][2].append(chunk)
                        continue
                    sel.unregister(fd)
                    self.reap(fd)
                if self.error is not None:
                    break
        finally:
            sel.close()
            self.close()
        if self.error is not None:
            raise self.error
        return [self.results[i] for i in range(len(self.jobs))]

    def close(self) -> None:
        """End the feeds, then kill and reap the children still running."""
        import signal

        for feed in self.feeds.values():
            feed.close()
        for fd, (_, pid, _) in list(self.running.items()):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
            del self.running[fd]
            self.release_slot(fd)

    def start(self, index: int, *, stream: bool = False) -> int:
        job = self.jobs[index]
        from pyrkt.kernel.process import die_with_parent

        r, w = os.pipe()
        blob_r, blob_w = os.pipe() if stream else (-1, -1)
        parent = os.getpid()
        slot = self.budget.new_slot() if self.budget is not None else 0
        pid = os.fork()
        if pid == 0:  # the child: unpack, report, and leave without any of the parent's cleanup
            code = 0
            try:
                die_with_parent(parent)  # a SIGKILLed fetch leaves no unpacker holding the store lock
                if self.budget is not None:
                    self.budget.use_slot(slot)
                for fd in (r, blob_w, *self.running, *(f.fd for f in self.feeds.values())):
                    if fd >= 0:
                        os.close(fd)
                if stream:
                    with os.fdopen(blob_r, "rb", buffering=CHUNK) as blob:
                        self.child(job, blob, w, self.budget)
                else:
                    self.child(job, cast(Path, job.blob), w, self.budget)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        if stream:
            os.close(blob_r)
            self.feeds[index] = BlobFeed(blob_w)
        self.running[r] = (index, pid, [])
        self.slots[r] = slot
        self.started.add(index)
        return r

    @staticmethod
    def child(job: UnpackJob, blob: Path | IO[bytes], w: int, budget: ImportBudget | None) -> None:
        import pickle

        result: tuple[str, object]
        try:
            implicit: set[str] = set()
            size = unpack(blob, job.dest, diff_id=job.diff_id, layer=job.layer, aci=job.aci,
                          implicit_dirs=implicit, writer_threads=FORKED_WRITER_THREADS, budget=budget)
            result = ("ok", (size, implicit))
        except BaseException as e:
            result = ("error", e)
        try:
            data = pickle.dumps(result)
        except Exception:  # an exception that does not pickle: keep its words
            data = pickle.dumps(("error", ImageError(f"layer {job.layer}: {result[1]}")))
        with os.fdopen(w, "wb") as f:
            f.write(data)

    def reap(self, fd: int) -> None:
        import pickle

        index, pid, chunks = self.running.pop(fd)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        self.release_slot(fd)
        try:
            kind, value = pickle.loads(b"".join(chunks))
        except Exception:
            kind, value = "error", ImageError(f"layer {self.jobs[index].layer}: the unpacking process ended "
                                              f"without a result (wait status {status})")
        if kind == "ok":
            self.results[index] = cast(tuple[int, set[str]], value)
        elif self.error is None:
            self.error = cast(BaseException, value)


    def release_slot(self, fd: int) -> None:
        """The child of ``fd`` is gone: its bytes stay charged, its slot is free again."""
        slot = self.slots.pop(fd, 0)
        if self.budget is not None:
            self.budget.release_slot(slot)


class BlobFeed:
    """The pipe a download writes a layer blob's bytes into, for the process unpacking it.

    ``close`` when the blob is complete (its end is the unpacker's end of input). If the
    unpacker has already failed, what is written is dropped: its own error is reported.
    """

    def __init__(self, fd: int) -> None:
        import threading

        self.fd = fd
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        try:
            write_all(self.fd, data)
        except BrokenPipeError:
            self.close()

    def close(self) -> None:
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def adopt_lower_dirs(dest: Path, implicit: set[str], lowers: list[Path], *, privileged: bool | None = None) -> None:
    """Give the dirs of ``dest`` the tar did not list (``implicit``, relative paths) the owner,
    mode and time of the same dir in ``lowers`` (top first), as ``unpack(lowers=…)`` does."""
    privileged = os.geteuid() == 0 if privileged is None else privileged
    unpacker = Unpacker(dest, layer="", privileged=privileged, lowers=lowers)
    for rel in sorted(implicit, key=lambda p: p.count("/"), reverse=True):
        path = os.path.join(unpacker.root, rel)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            unpacker.implicit_dir(path, rel.split("/"))
    for path, attrs in unpacker.dirs.items():
        unpacker.apply_dir(path, attrs)
