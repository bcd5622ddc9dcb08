"""Batch allocation: a rule applied to every unallocated payment of JSON Lines ledgers.

``paysplit batch`` (and a billing company's nightly job) runs Apply
Automatically over every account of every practice it hosts. This module is
the library behind it:

* **Inputs** are JSON Lines ledgers (``docs/ledger.md``): a header line, then
  one account per line. :func:`iter_chunks` cuts each file into *chunks* of
  consecutive account lines by scanning it for newlines once (no line is
  parsed, nothing is held), so that a chunk is just (file, byte range, first
  line number). The local engine's workers start on the first chunks while the
  scan goes on (:class:`ChunkScan`). A Dask bag needs them all first: the
  cluster's workers find them, a block of bytes each (:mod:`paysplit.batch_blocks`).
* **Per account** (:meth:`Worker.run_chunk`): the line is validated in one
  pydantic call plus one linear reference check (:mod:`paysplit.ledger_io`),
  then every payment that is not void, not a refund and has unallocated
  credit gets the rule, in payment-date then ledger order, each payment
  seeing the splits of the ones before it: exactly
  :func:`paysplit.operations.apply_rule` per payment, with the plan applied
  to the account between payments. One account is in memory at a time (and,
  in a pool's worker, the plan lines of its chunk, up to 32 MiB). The
  hot path (``docs/performance.md``): the request is built once per rule, the
  account's figures once per account (then updated with each plan's splits),
  and the plans stay the core's drafts (tuples), written as JSON in one
  pydantic-core call without making the plan models.
* **Engines**: ``local`` runs the chunks in this process (``workers=1``) or in
  a pool of processes; ``dask`` maps the same chunks as a Dask bag over
  ``dask.distributed`` (a ``LocalCluster``, or an existing cluster with
  ``scheduler=ADDR``). Every process compiles the rules once. Chunk results
  are put together in chunk order, so the output is the same bytes whatever
  the engine and the number of workers.
* **Modules**: :mod:`paysplit.batch_spec` (what a run is given and gives back, the
  inputs cut into chunks), :mod:`paysplit.batch_blocks` (the same chunks, found by
  Dask's workers), :mod:`paysplit.batch_worker` (one process's work),
  :mod:`paysplit.batch_output` (the output folder); this module runs the engines
  and is the library's face (``run_batch`` and every public name of the others).
* **Output** in the ``out`` folder, written atomically (a temporary file,
  then a rename, once the whole run succeeded): ``<input stem>.plans.jsonl``
  per input file (one line per plan: account, line number, payment, plan),
  ``errors.jsonl`` (accounts that could not be read or processed and plans a
  policy blocked, each with file, line and reason) and ``summary.json``.

Nothing in a plans file depends on the clock, the engine or the worker
count: the run date is the ``as_of`` given (``--as-of``), else the ledger
header's ``as_of``, else the date the run started (fixed once by the driver,
so a run crossing midnight, or a worker on another machine, agrees).
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from paysplit.batch_blocks import chunks_of_blocks, cut_blocks, lines_in_block
from paysplit.batch_frontier import Frontier, WorkerLost
from paysplit.batch_output import OutputFolder, sweep_stale
from paysplit.batch_spec import (
    DASK_CHUNK_SIZE,
    DEFAULT_CHUNK_SIZE,
    BatchError,
    BatchSpec,
    Chunk,
    ChunkResult,
    ChunkScan,
    Counts,
    FileSummary,
    InputFile,
    Summary,
    iter_chunks,
    plan_chunks,
    resolve_inputs,
    scan_lines,
)
from paysplit.batch_worker import (
    STREAM_BUFFER,
    Worker,
    payments_to_apply,
    plan_line,
    pool_task,
    run_chunk_to_parts,
    share_frontier,
    worker_for,
)
from paysplit.errors import LedgerError, UsageError
from paysplit.ledger_io import iter_jsonl
from paysplit.locking import LedgerLocked, folder_lock

__all__ = [
    "DASK_CHUNK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "ENGINES",
    "BatchError",
    "BatchSpec",
    "Chunk",
    "ChunkResult",
    "ChunkScan",
    "Counts",
    "FileSummary",
    "InputFile",
    "Summary",
    "Worker",
    "iter_chunks",
    "payments_to_apply",
    "plan_chunks",
    "plan_line",
    "resolve_inputs",
    "run_batch",
    "scan_lines",
]

Engine = Literal["local", "dask"]
ENGINES: tuple[Engine, ...] = ("local", "dask")

# --- engines ---------------------------------------------------------------------------
Progress = Callable[[int, int | None], None]
"""Called after each finished chunk with the account lines finished so far and every
input's account lines (None while the inputs are still being scanned)."""


class _ScanAhead:
    """Chunks found by a thread of their own, ahead of whoever takes them: reading a file
    releases the GIL, and counting newlines barely holds it. The thread starts when the
    first chunk is asked for (for a pool, in the pool's task thread: after the fork)."""

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self._chunks = chunks
        self._found: queue.SimpleQueue[Chunk | BaseException | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._scan, name="paysplit-scan", daemon=True)

    def _scan(self) -> None:
        try:
            for chunk in self._chunks:
                if self._stopping.is_set():
                    break
                self._found.put(chunk)
        except BaseException as error:  # an input that failed to read: raised in the taker
            self._found.put(error)
            return
        self._found.put(None)  # (after a stop too: a taker still waiting gets its end)

    def __iter__(self) -> Iterator[Chunk]:
        self._thread.start()
        while (item := self._found.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """Stop the scan at its next chunk and wait for its thread."""
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join()


def _run_in_process(
    spec: BatchSpec, scan: ChunkScan, output: OutputFolder, progress: Progress | None
) -> None:
    worker = worker_for(spec)
    current: tuple[int, IO[bytes]] | None = None
    chunks = _ScanAhead(iter(scan))
    finished = 0
    try:
        for chunk in chunks:
            if current is None or current[0] != chunk.file.index:
                if current is not None:
                    current[1].close()
                stream = open(  # noqa: SIM115 - closed below
                    output.plans_tmp[chunk.file.index], "ab", buffering=STREAM_BUFFER
                )
                current = (chunk.file.index, stream)
            output.written(chunk, worker.run_chunk(chunk, current[1], output.errors))
            if progress is not None:
                finished += chunk.lines
                progress(finished, scan.total)
    finally:
        chunks.stop()
        if current is not None:
            current[1].close()


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` where it is safe (POSIX, no other thread alive): workers start at once and
    inherit the compiled rules; otherwise ``spawn`` (each worker compiles them once)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _run_pool(
    spec: BatchSpec,
    scan: ChunkScan,
    output: OutputFolder,
    workers: int,
    progress: Progress | None,
) -> None:
    chunks = iter(scan)
    first = next(chunks, None)
    if first is None:  # no account line anywhere: no pool to start
        return
    staging = output.make_staging()
    context = _pool_context()
    # Each worker writes a chunk's plans into the plans file itself when every chunk
    # before it is written (most are), so that the driver appends only the others.
    frontier = Frontier(context)
    # An executor, not multiprocessing.Pool: a worker that dies (the OOM killer, a
    # kill -9) breaks it and fails every chunk not yet finished, where a Pool starts a
    # new worker and waits for the lost chunk forever.
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=share_frontier,
        initargs=(frontier, os.getpid()),
    )

    def submit(chunk: Chunk) -> None:
        task = (spec, chunk, staging, str(output.plans_tmp[chunk.file.index]))
        pool.submit(pool_task, task).add_done_callback(feeder.done)

    # The first chunk from this thread: a fork pool's workers start on it, forked while
    # this is the only thread. The feeder hands out the others as the scan finds them.
    feeder = _Feeder(workers * _CHUNKS_AHEAD_PER_WORKER)
    feeder.slots.acquire()
    submit(first)
    ahead = _ScanAhead(chunks)
    feeder.start(ahead, submit)
    finished = 0
    try:
        for result in feeder:
            output.accept(result, frontier, abandon=feeder.pool_lost.is_set)
            feeder.slots.release()
            if progress is not None:
                finished += scan.found[result.index].lines
                progress(finished, scan.total)
    except BaseException:
        feeder.stop()
        ahead.stop()  # the feeder may be waiting for the scan's next chunk
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        feeder.stop()
        ahead.stop()


_CHUNKS_AHEAD_PER_WORKER = 4
"""Chunks handed to the pool per worker before the driver has taken their results:
enough that no worker waits for the driver, few enough that a chunk is not long queued."""


class _Feeder:
    """Hands a local pool the scan's chunks from a thread of its own, so that the driver
    takes finished chunks (and tells the progress bar) while the scan goes on."""

    def __init__(self, ahead: int) -> None:
        self.slots = threading.BoundedSemaphore(ahead)
        """A slot per chunk handed out and not yet taken by the driver."""
        self.finished: queue.SimpleQueue[object] = queue.SimpleQueue()
        """Each chunk's future once done; then :data:`_FED` with the count, or the
        exception that stopped the feeding."""
        self.pool_lost = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._fed = 1  # the first chunk, handed out by the driver

    def done(self, future: concurrent.futures.Future[ChunkResult]) -> None:
        """A chunk's future is done (called in the pool's thread)."""
        if not future.cancelled() and isinstance(
            future.exception(), concurrent.futures.process.BrokenProcessPool
        ):
            # Said at once: the driver may be waiting for the lock a lost worker held.
            self.pool_lost.set()
        self.finished.put(future)

    def start(self, chunks: Iterable[Chunk], submit: Callable[[Chunk], None]) -> None:
        self._thread = threading.Thread(
            target=self._feed, args=(chunks, submit), name="paysplit-feeder", daemon=True
        )
        self._thread.start()

    def _feed(self, chunks: Iterable[Chunk], submit: Callable[[Chunk], None]) -> None:
        try:
            for chunk in chunks:
                self.slots.acquire()
                if self._stopping.is_set():
                    return
                submit(chunk)
                self._fed += 1
        except BaseException as error:  # an input that failed to read, a broken pool
            self.finished.put(error)
            return
        self.finished.put((_FED, self._fed))

    def __iter__(self) -> Iterator[ChunkResult]:
        """Each chunk's result as it finishes; :class:`WorkerLost` when the pool broke."""
        taken, fed = 0, None
        try:
            while fed is None or taken < fed:
                item = self.finished.get()
                if isinstance(item, tuple):
                    fed = item[1]
                    continue
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, concurrent.futures.Future)
                taken += 1
                yield item.result()
        except concurrent.futures.process.BrokenProcessPool:
            raise WorkerLost from None

    def stop(self) -> None:
        """Stop handing out chunks, and wait for the feeder's thread."""
        self._stopping.set()
        with contextlib.suppress(ValueError):
            self.slots.release()  # a feeder waiting for a slot sees the stop
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


_FED = "fed"


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop the pool's workers at once, mid-chunk: the run is over, its output discarded.
    (``shutdown`` would let each finish its chunk first.)"""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


def _dask_task(chunk: Chunk, spec: BatchSpec, staging: str) -> ChunkResult:
    return run_chunk_to_parts(spec, chunk, staging)


def _run_dask(
    spec: BatchSpec,
    scan: ChunkScan,
    output: OutputFolder,
    workers: int,
    scheduler: str | None,
    progress: Progress | None,
) -> None:
    try:  # the optional extra paysplit[dask]; untyped, so held as Any
        dask: Any = importlib.import_module("dask")
        dask_bag: Any = importlib.import_module("dask.bag")
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise UsageError(
            "--engine dask needs Dask: pip install 'paysplit[dask]' (dask[bag] and distributed)"
        ) from None
    blocks = cut_blocks(scan.inputs, scan.chunk_size)
    if not blocks:
        scan.feed(())
        list(scan)
        return
    finished = 0
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError) as error:
                raise UsageError(
                    f"--scheduler {scheduler}: cannot reach the Dask scheduler ({error})"
                ) from None
        else:
            # The workers' statistical profiler samples every task's stack each 10 ms:
            # a tenth of the CPU of this pure-Python work. And each process of the
            # cluster wakes its event loop every 20 ms to time its own responsiveness;
            # in a worker whose one thread runs pure-Python work, every wake-up takes
            # the GIL from the task (5-15% of a run, docs/performance.md). A batch
            # needs neither: once a second still notices a blocked loop.
            stack.enter_context(
                dask.config.set(
                    {
                        "distributed.worker.profile.enabled": False,
                        "distributed.admin.tick.interval": "1s",
                    }
                )
            )
            # A task that fails (an input lost while it is read) is raised here and
            # reported in one message; the worker's own log of it, with its traceback,
            # would come first on stderr.
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        # A bag is made from its partitions, so the chunks are found first, but by the
        # cluster's workers, each block of bytes apart (paysplit.batch_blocks): not by
        # this process reading every input byte while the workers wait. A partition
        # counts many blocks: a task per block would cost the scheduler more than the
        # counting.
        threads = max(1, sum(client.nthreads().values()))
        counting = dask_bag.from_sequence(blocks, npartitions=min(len(blocks), 4 * threads))
        scan.feed(chunks_of_blocks(blocks, client.compute(counting.map(lines_in_block)).result()))
        chunks = list(scan)
        if not chunks:
            return
        staging = output.make_staging()
        bag = dask_bag.from_sequence(chunks, npartitions=len(chunks)).map(
            _dask_task, spec=spec, staging=staging
        )
        futures = client.compute(bag.to_delayed())
        chunk_of = {future.key: chunk for future, chunk in zip(futures, chunks, strict=True)}
        for future in distributed.as_completed(futures):
            try:
                results = future.result()
            except distributed.KilledWorker as killed:
                raise BatchError(_dask_worker_lost(chunk_of[future.key], killed)) from None
            for result in results:
                output.accept(result)
                if progress is not None:
                    finished += chunks[result.index].lines
                    progress(finished, scan.total)


def _dask_worker_lost(chunk: Chunk, killed: Any) -> str:
    """The message of a Dask run that gave up on ``chunk`` (KilledWorker): each worker it
    was given to died, ``allowed_failures`` + 1 of them."""
    died = killed.allowed_failures + 1
    last = chunk.first_line + chunk.lines - 1
    return (
        f"{chunk.file.name} lines {chunk.first_line}-{last}: Dask gave up on them after "
        f"{'the worker' if died == 1 else f'{died} workers'} they were given to died "
        "(killed, perhaps for lack of memory: the workers' logs say more); the run stopped "
        "and nothing was written. Run it again; if memory is short, with a smaller "
        "--chunk-size"
    )


# --- a run -----------------------------------------------------------------------------
def run_batch(
    spec: BatchSpec,
    inputs: Sequence[str],
    out_dir: str | Path,
    *,
    engine: Engine = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
    on_commit: Callable[[], None] | None = None,
) -> Summary:
    """Run the batch and write its files; raise :class:`UsageError` for bad arguments.

    ``chunk_size`` is the account lines per unit of work; None means
    :data:`DEFAULT_CHUNK_SIZE`, or :data:`DASK_CHUNK_SIZE` with the Dask engine.

    ``progress``, when given, is called after each finished chunk with the account lines
    finished so far and the inputs' account lines (None until the scan has found them all).

    ``on_commit``, when given, is called once every chunk is written, just before the
    run's files are renamed into place one after the other: the command line holds
    Ctrl-C and SIGTERM from then on, so that no stop leaves new plans files beside the
    previous run's summary.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise UsageError("--scheduler joins a Dask cluster: use it with --engine dask")
    if scheduler is not None and workers is not None:
        raise UsageError(
            "--workers sizes the local Dask cluster; with --scheduler the cluster's own "
            "workers run the batch"
        )
    if workers is None:
        workers = 1 if engine == "local" else (os.cpu_count() or 1)
    if workers < 1:
        raise UsageError(f"--workers {workers}: at least one worker is needed")
    if chunk_size is None:
        chunk_size = DASK_CHUNK_SIZE if engine == "dask" else DEFAULT_CHUNK_SIZE
    if chunk_size < 1:
        raise UsageError(f"--chunk-size {chunk_size}: at least one account per chunk")
    spec = _resolved(spec)
    files = resolve_inputs(inputs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the batch's output")
    worker_for(spec)  # compile now: rule errors are usage errors before any work starts
    created = _make_folder(out)
    try:
        # One run at a time in a folder: two runs' files never mix. A run killed outright
        # left its temporaries: removed now, under the lock.
        with contextlib.ExitStack() as held:
            waited, remade = _lock_folder(out, held)
            created = created or remade
            sweep_stale(out)
            summary = _run_locked(
                spec,
                files,
                out,
                (engine, workers, scheduler, chunk_size),
                progress,
                on_commit,
                started + waited,  # the run's seconds leave out the wait for another run
            )
    except BaseException as error:
        if created:  # a run that wrote nothing leaves no folder behind either
            with contextlib.suppress(OSError):
                out.rmdir()
        if isinstance(error, OSError):
            where = f"{error.filename}: " if error.filename else ""
            raise BatchError(
                f"the batch stopped: {where}{error.strerror or error}; nothing was written "
                f"(files already in {out} are as they were)"
            ) from error
        raise
    return summary


def _run_locked(
    spec: BatchSpec,
    files: list[InputFile],
    out: Path,
    how: tuple[Engine, int, str | None, int],
    progress: Progress | None,
    on_commit: Callable[[], None] | None,
    started: float,
) -> Summary:
    """The run itself, with the output folder locked: temporaries, the engine, the commit
    (or, on any failure, every temporary removed). ``how`` is the engine, the workers,
    the scheduler and the chunk size."""
    engine, workers, scheduler, chunk_size = how
    good: list[InputFile] = []
    bad: list[tuple[InputFile, LedgerError]] = []
    for file in files:
        try:
            iter_jsonl(file.path)
        except LedgerError as problem:
            bad.append((file, problem))
        else:
            good.append(file)
    scan = ChunkScan(good, chunk_size)
    output = OutputFolder(out, files, scan.found)
    try:
        output.open()
        for bad_file, bad_header in bad:
            output.header_error(bad_file, bad_header)
        if engine == "dask":
            _run_dask(spec, scan, output, workers, scheduler, progress)
        elif workers == 1:
            _run_in_process(spec, scan, output, progress)
        else:
            _run_pool(spec, scan, output, workers, progress)
        if progress is not None:  # the last chunk may have finished before the scan knew
            progress(scan.lines, scan.lines)
        summary = Summary(
            counts=output.total,
            seconds=time.perf_counter() - started,
            rule=spec.rule,
            engine=engine,
            workers=workers if scheduler is None else 0,
            out=str(out),
            files=tuple(
                FileSummary(f.name, str(out / f.plans_name), output.file_counts[f.index])
                for f in files
            ),
            chunks=len(scan.found),
            trace=spec.trace,
        )
        if on_commit is not None:
            on_commit()
        output.commit(summary)
    except BaseException:
        output.discard()
        raise
    return summary


def _make_folder(out: Path) -> bool:
    """Make the output folder when it is not there; True when this run made it."""
    if out.is_dir():
        return False
    try:
        out.mkdir(parents=True)
    except FileExistsError:
        return False  # another run made it a moment ago
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return True


_FOLDER_REMADE = 5
"""How many times a run makes its output folder again while it waits for the lock."""


def _lock_folder(out: Path, held: contextlib.ExitStack) -> tuple[float, bool]:
    """Lock the output folder until ``held`` closes: (seconds waited, whether this run
    had to make the folder again).

    A run that made the folder removes it when it fails (it wrote nothing). Another run
    waiting for its lock meanwhile finds no folder to lock: it makes it again and goes on
    waiting, rather than stopping with "No such file or directory".
    """
    remade, attempts = False, 0
    while True:
        try:
            return held.enter_context(folder_lock(out)), remade
        except LedgerLocked:
            if out.is_dir() or attempts == _FOLDER_REMADE:
                raise  # another run holds it (the message names it), or it cannot be locked
            remade = _make_folder(out) or remade
            attempts += 1


def _resolved(spec: BatchSpec) -> BatchSpec:
    """The spec every worker gets: absolute rule paths and the run's start date fixed."""
    return dataclasses.replace(
        spec,
        rule_files=tuple(str(Path(p).resolve()) for p in spec.rule_files),
        today=spec.today or dt.date.today(),
    )
