"""The local pool's plans written once: straight into the plans file, in chunk order.

A batch's plans files hold the chunks' plan lines in chunk order, whatever order the
workers finish them in. With Dask each task writes part files that the driver appends
(the workers may be on other machines). A local pool's workers share the driver's
disk, and most chunks finish after the one before them: then the worker can write its
plan lines into the plans file itself, and nobody copies them again (with the trace,
2.1 GB at 200,000 accounts; docs/performance.md, round 11).

:class:`Frontier` is the index of the next chunk to be written, shared by the driver
and its workers under one lock. Writes happen only at the frontier, so a plans file
is always exactly its first chunks, and appending is writing in place:

* a worker that finishes the frontier's chunk appends its lines and moves the frontier
  on (:meth:`Frontier.write_if_next`);
* a worker that finishes a later chunk keeps its lines in a part file, and the driver,
  which takes finished chunks in order, appends it when the frontier reaches it
  (:meth:`Frontier.append_next`).

:class:`PlanSpool` holds a chunk's plan lines in memory until the chunk is done, and
moves them to the part file if they grow past :data:`SPOOL_LIMIT` (an account with
thousands of charges and many payments), so memory stays flat.
"""

from __future__ import annotations

import io
import multiprocessing.context
from collections.abc import Callable
from typing import IO, Any

from paysplit.batch_spec import BatchError

__all__ = ["SPOOL_LIMIT", "Frontier", "PlanSpool", "WorkerLost", "write_all"]

SPOOL_LIMIT = 32 << 20
"""Bytes of plan lines a worker holds for one chunk before it moves them to the part file
(with the trace, 500 benchmark accounts make about 5 MB)."""


class Frontier:
    """The next chunk whose plan lines go into the plans files, shared across processes."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        # A synchronized Value: handed to the pool's workers when they start (fork or
        # spawn), its lock is the one every write to a plans file is made under.
        self._next: Any = context.Value("q", 0)

    @property
    def next_index(self) -> int:
        """The next chunk to be written. Read without the lock (a lost worker may hold
        it for good): the driver asks only about chunks whose results it has, and a
        worker moves the frontier before it sends its result."""
        return int(self._next.get_obj().value)

    def write_if_next(self, index: int, lines: bytes | memoryview, plans_file: str) -> bool:
        """In a worker: append chunk ``index``'s plan lines to ``plans_file`` and move the
        frontier on, if every chunk before it is written; False (nothing written) if not."""
        with self._next.get_lock():
            if self._next.value != index:
                return False
            if lines:
                with open(plans_file, "ab", buffering=0) as sink:
                    write_all(sink, memoryview(lines))
            self._next.value = index + 1
        return True

    def append_next(
        self,
        index: int,
        append: Callable[[], None],
        abandon: Callable[[], bool] | None = None,
    ) -> None:
        """In the driver: ``append`` chunk ``index``'s part file, which must be the next
        one (the driver takes finished chunks in order), and move the frontier on.

        ``abandon`` is asked while the lock is held elsewhere: a worker killed while it
        held the lock never gives it back, and when ``abandon()`` says the pool is lost
        the driver stops waiting (:class:`WorkerLost`) instead of waiting forever."""
        lock = self._next.get_lock()
        while not lock.acquire(timeout=_LOCK_PATIENCE):
            if abandon is not None and abandon():
                raise WorkerLost
        try:
            if self._next.value != index:
                raise RuntimeError(
                    f"chunk {index} was to be appended, but chunk {self._next.value} is next"
                )
            append()
            self._next.value = index + 1
        finally:
            lock.release()


_LOCK_PATIENCE = 0.25
"""Seconds the driver waits for the lock before it asks whether to go on waiting."""


class WorkerLost(BatchError):
    """A local pool lost a worker mid-run (killed, perhaps by the system for lack of
    memory): its chunk will never finish, so the run stops, nothing written."""

    def __init__(self) -> None:
        super().__init__(
            "a worker process ended before it finished its chunk (it was killed, perhaps "
            "by the system for lack of memory); the run stopped and nothing was written. "
            "Run it again; if memory is short, with fewer --workers or a smaller --chunk-size"
        )


def write_all(sink: IO[bytes], lines: memoryview) -> None:
    """Write every byte (an unbuffered write may take only part of them)."""
    while lines:
        written = sink.write(lines)
        if not written:
            raise OSError(f"{sink.name}: the file took no more bytes")
        lines = lines[written:]


class PlanSpool:
    """A chunk's plan lines, in memory up to :data:`SPOOL_LIMIT`, then in ``part``."""

    def __init__(self, part: str, buffering: int, limit: int | None = None) -> None:
        self.part = part
        self.size = 0
        self._buffering = buffering
        self._limit = SPOOL_LIMIT if limit is None else limit
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None
        self._closed = False

    def write(self, lines: bytes, /) -> int:
        if self._closed:
            raise ValueError("the chunk's plan lines are already in its part file")
        self.size += len(lines)
        if self._memory is not None:
            if self._memory.tell() + len(lines) <= self._limit:
                return self._memory.write(lines)
            self._spill()
        assert self._file is not None
        return self._file.write(lines)

    def in_memory(self) -> memoryview | None:
        """The lines, when they are all still in memory: a view of them, so nothing more
        can be written while it is held."""
        return None if self._memory is None else self._memory.getbuffer()

    def to_part(self) -> None:
        """Make sure every line is in the part file, and close it."""
        if self._memory is not None:
            self._spill()
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()

    def _spill(self) -> None:
        assert self._memory is not None
        self._file = open(self.part, "wb", buffering=self._buffering)  # noqa: SIM115
        self._file.write(self._memory.getbuffer())
        self._memory = None
