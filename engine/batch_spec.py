"""What a batch run is given and gives back, and its inputs cut into chunks.

The plain, picklable records every part of :mod:`paysplit.batch` passes around: the
run's :class:`BatchSpec` (all a worker process needs to rebuild the rules), each
input ledger (:class:`InputFile`) and the chunks of account lines it is cut into
(:class:`Chunk`, by :func:`iter_chunks`: one scan for newlines, nothing parsed,
:class:`ChunkScan` keeping what it found while a run goes on), and
what comes back (:class:`Counts` per chunk, file and run; :class:`Summary`, as
``summary.json`` holds it).
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paysplit.errors import PaysplitError, UsageError

DEFAULT_CHUNK_SIZE = 500
"""Account lines per chunk: large enough that scheduling costs nothing, small enough
that two workers finish within a fraction of a second of each other."""

DASK_CHUNK_SIZE = 2000
"""Account lines per chunk with ``--engine dask``, unless given. A Dask task costs far
more than a pool's (the scheduler, the worker's event loop, the result's round trip to
the driver), and Dask asks for tasks of 100 ms or more: 500 accounts take about that,
2,000 took 5-15% off a 2-worker run (docs/performance.md, round 11)."""

PLANS_SUFFIX = ".plans.jsonl"
ERRORS_FILE = "errors.jsonl"
SUMMARY_FILE = "summary.json"
_BLOCK = 1 << 20
"""Bytes read at a time when scanning an input for line starts."""


class BatchError(PaysplitError):
    """The run could not finish (an input vanished, the disk filled up): nothing written."""


# --- what a run is given ------------------------------------------------------------
@dataclass(frozen=True)
class BatchSpec:
    """Everything a worker needs to rebuild the run's rules: small, hashable, picklable."""

    rule_files: tuple[str, ...]
    """Made absolute by :func:`paysplit.batch.run_batch`: a Dask worker may run in
    another folder (or on another machine that sees the same shared storage)."""
    rule: str
    disabled_plugins: tuple[str, ...] = ()
    allowed_plugins: tuple[str, ...] | None = None
    """The ``PAYSPLIT_PLUGINS`` allow-list as the driver saw it (None: every plugin)."""
    as_of: dt.date | None = None
    """``--as-of``: the run date for every ledger (as ``paysplit apply --as-of``)."""
    today: dt.date | None = None
    """The date the run started (set by :func:`paysplit.batch.run_batch`): the run date of a ledger
    whose header has no ``as_of``, the same in every worker even across midnight."""
    trace: bool = True
    """``--trace full`` (True: every plan as ``paysplit apply --json`` prints it) or
    ``--trace none`` (False: the same plans with an empty trace)."""


@dataclass(frozen=True)
class InputFile:
    """One input ledger: the name the user gave (shown) and where to open it (absolute)."""

    index: int
    name: str
    path: str
    plans_name: str
    """The output file's name in the ``out`` folder: ``<stem>.plans.jsonl``."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive account lines of one input: the unit of work given to a worker."""

    index: int
    """Position in the run: chunks are put together in this order."""
    file: InputFile
    start: int
    """Byte offset of the chunk's first line."""
    end: int
    """Byte offset just past its last line."""
    first_line: int
    """Line number (from 1; the header is line 1) of the first line."""
    lines: int


# --- what a run gives back ----------------------------------------------------------
@dataclass
class Counts:
    """What was done, summed over accounts, chunks, files and the whole run."""

    accounts: int = 0
    """Account lines read (blank lines are not accounts)."""
    payments: int = 0
    """Payments the rule was applied to (one plan each, blocked plans included)."""
    splits: int = 0
    credits: int = 0
    blocked: int = 0
    """Plans a policy blocked: reported in errors.jsonl, not in the plans file."""
    errors: int = 0
    """Accounts (or header lines) that could not be read or processed."""
    fast_path: int = 0
    """Accounts whose plans the rule's fast path made (:mod:`paysplit.rule_kernel`); the
    others ran on the general core (a rule without a fast path, or an account a plugin's
    charge form failed on: the same plans, only slower)."""

    def add(self, other: Counts) -> None:
        self.accounts += other.accounts
        self.payments += other.payments
        self.splits += other.splits
        self.credits += other.credits
        self.blocked += other.blocked
        self.errors += other.errors
        self.fast_path += other.fast_path


@dataclass(frozen=True)
class ChunkResult:
    """A finished chunk: its counts, and (from a worker process) where its output is."""

    index: int
    counts: Counts
    plans_part: str | None = None
    """The part file holding the chunk's plan lines; None when a local pool's worker
    wrote them into the plans file itself (:mod:`paysplit.batch_frontier`)."""
    errors_part: str | None = None
    plans_bytes: int = 0
    errors_bytes: int = 0


@dataclass(frozen=True)
class FileSummary:
    input: str
    plans: str
    counts: Counts


@dataclass(frozen=True)
class Summary:
    """The run, as ``summary.json`` holds it and ``paysplit batch`` prints it."""

    counts: Counts
    seconds: float
    rule: str
    engine: str
    workers: int
    out: str
    files: tuple[FileSummary, ...]
    chunks: int
    trace: bool = True
    """False for ``--trace none``: the plans were written without their trace."""

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "accounts": c.accounts,
            "payments": c.payments,
            "splits": c.splits,
            "credits": c.credits,
            "blocked": c.blocked,
            "errors": c.errors,
            "fast_path": c.fast_path,
            "seconds": round(self.seconds, 3),
            "rule": self.rule,
            "engine": self.engine,
            "workers": self.workers,
            "chunks": self.chunks,
            "trace": "full" if self.trace else "none",
            "out": self.out,
            "errors_file": os.path.join(self.out, ERRORS_FILE),
            "files": [{"input": f.input, "plans": f.plans, **asdict(f.counts)} for f in self.files],
        }


# --- inputs and chunks -----------------------------------------------------------------
def resolve_inputs(patterns: Sequence[str]) -> list[InputFile]:
    """Expand globs, check every input exists, and name each one's plans file.

    A pattern that matches nothing, a folder, or two inputs that would write the
    same ``<stem>.plans.jsonl`` are usage errors. The same file named twice (by a
    glob and by name, say) is read once.
    """
    if not patterns:
        raise UsageError("batch needs input ledgers: --in PATH... (JSON Lines files or globs)")
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise UsageError(f"--in {pattern}: no file matches this pattern")
        else:
            matches = [pattern]
        for name in matches:
            path = Path(name)
            if not path.exists():
                raise UsageError(f"--in {name}: no such file")
            if path.is_dir():
                raise UsageError(f"--in {name}: is a folder; give the JSON Lines files in it")
            absolute = str(path.resolve())
            if absolute not in seen:
                seen.add(absolute)
                found.append((name, absolute))
    inputs: list[InputFile] = []
    taken: dict[str, str] = {}
    for index, (name, absolute) in enumerate(found):
        plans_name = _stem(Path(name).name) + PLANS_SUFFIX
        if plans_name in taken:
            raise UsageError(
                f"--in {taken[plans_name]} and {name} would both write {plans_name}: "
                "rename one, or run them into different --out folders"
            )
        taken[plans_name] = name
        inputs.append(InputFile(index, name, absolute, plans_name))
    return inputs


def _stem(filename: str) -> str:
    for suffix in (".jsonl", ".ndjson", ".json"):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return Path(filename).stem or filename


def scan_lines(path: str, chunk_size: int) -> Iterator[tuple[int, int, int, int]]:
    """``(start, end, first_line, lines)`` of each run of ``chunk_size`` lines after line 1.

    One pass over the bytes looking for newlines, a block at a time: nothing is
    parsed and memory does not grow with the file (or with a very long line).
    """
    if chunk_size < 1:
        raise UsageError("the chunk size must be at least 1")
    with open(path, "rb") as stream:
        offset = 0
        while True:  # skip the header line without reading it whole
            block = stream.read(_BLOCK)
            if not block:
                return
            newline = block.find(b"\n")
            if newline >= 0:
                offset += newline + 1
                break
            offset += len(block)
        stream.seek(offset)
        start, first_line, counted = offset, 2, 0
        base = offset
        while True:
            block = stream.read(_BLOCK)
            if not block:
                break
            # The block's newlines are counted once: counting what is left of it for
            # every chunk was quadratic when chunks are short (a MiB per one-line chunk).
            position, available = 0, block.count(b"\n")
            while available >= chunk_size - counted:
                wanted = chunk_size - counted
                for _ in range(wanted):
                    position = block.index(b"\n", position) + 1
                available -= wanted
                end = base + position
                yield start, end, first_line, chunk_size
                start, first_line, counted = end, first_line + chunk_size, 0
            counted += available
            base += len(block)
        if base > start:  # the lines after the last full chunk
            stream.seek(base - 1)
            unterminated = stream.read(1) != b"\n"
            yield start, base, first_line, counted + (1 if unterminated else 0)


def iter_chunks(
    inputs: Sequence[InputFile], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[Chunk]:
    """Every input's account lines as chunks, numbered in input order, as the scan finds them."""
    index = 0
    for file in inputs:
        try:
            for start, end, first_line, lines in scan_lines(file.path, chunk_size):
                yield Chunk(index, file, start, end, first_line, lines)
                index += 1
        except OSError as error:
            name_input(error, file)
            raise


def name_input(error: OSError, file: InputFile) -> None:
    """A failed read names no file: say which input it was."""
    if error.filename is None:
        error.filename = file.path


def input_changed(file: InputFile) -> OSError:
    """The error of an input whose bytes are not the ones its chunks were cut from: the
    run stops rather than read other lines, or fewer, than it counted."""
    return OSError(0, "the file changed while the batch read it", file.path)


def plan_chunks(inputs: Sequence[InputFile], chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[Chunk]:
    """Every input's account lines as chunks, numbered in input order."""
    return list(iter_chunks(inputs, chunk_size))


class ChunkScan:
    """The inputs' chunks as one pass of :func:`iter_chunks` finds them, kept in order.

    The local engine iterates it once, in a thread of its own, and its
    workers start on the first chunks while the scan goes on through the rest: one
    process reading every input byte before any work began would be a serial wait as
    long as the inputs (914 MB: 0.4 s from the page cache, 1.7 s from disk), a larger
    share of the run the more workers there are. Other threads only read what it has
    found so far.
    """

    def __init__(self, inputs: Sequence[InputFile], chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.inputs = tuple(inputs)
        self.chunk_size = chunk_size
        self.found: list[Chunk] = []
        """The chunks found so far, in order (``found[i].index == i``)."""
        self.lines = 0
        """Account lines in them."""
        self.done = False
        """True once every input was scanned to its end."""
        self._source = iter_chunks(inputs, chunk_size)

    def feed(self, chunks: Iterable[Chunk]) -> None:
        """Keep ``chunks``, found elsewhere, instead of scanning here (the Dask engine's
        workers find them: :mod:`paysplit.batch_blocks`). Before the scan is iterated."""
        self._source = iter(chunks)

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self._source:
            self.found.append(chunk)
            self.lines += chunk.lines
            yield chunk
        self.done = True

    @property
    def total(self) -> int | None:
        """Every input's account lines, or None while the scan goes on."""
        return self.lines if self.done else None
