"""Batch allocation: a rule applied to every unallocated payment of JSON Lines ledgers.

``paysplit batch`` (and a billing company's nightly job) runs Apply
Automatically over every account of every practice it hosts. This module is
the library behind it:

* **Inputs** are JSON Lines ledgers (``docs/ledger.md``): a header line, then
  one account per line. :func:`plan_chunks` cuts each file into *chunks* of
  consecutive account lines by scanning it for newlines once (no line is
  parsed, nothing is held), so that a chunk is just (file, byte range, first
  line number).
* **Per account** (:meth:`Worker.run_chunk`): the line is validated in one
  pydantic call plus one linear reference check (:mod:`paysplit.ledger_io`),
  then every payment that is not void, not a refund and has unallocated
  credit gets the rule, in payment-date then ledger order, each payment
  seeing the splits of the ones before it: exactly
  :func:`paysplit.operations.apply_rule` per payment, with the plan applied
  to the account between payments. One account is in memory at a time. The
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

import contextlib
import dataclasses
import datetime as dt
import glob
import importlib
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

from paysplit.allocation import allocate_draft
from paysplit.apply import apply_to_account
from paysplit.atomic import sync_folder
from paysplit.errors import LedgerError, PaysplitError, UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, LedgerHeader
from paysplit.ledger_io import account_from_line, iter_jsonl
from paysplit.operations import payment_request, request_base
from paysplit.plans import Plan, PlanDraft
from paysplit.rule_kernel import kernel_for
from paysplit.rules import CompiledRule, RuleSet

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ENGINES",
    "BatchError",
    "BatchSpec",
    "Chunk",
    "ChunkResult",
    "Counts",
    "FileSummary",
    "InputFile",
    "Summary",
    "Worker",
    "payments_to_apply",
    "plan_chunks",
    "plan_line",
    "resolve_inputs",
    "run_batch",
]

Engine = Literal["local", "dask"]
ENGINES: tuple[Engine, ...] = ("local", "dask")
DEFAULT_CHUNK_SIZE = 500
"""Account lines per chunk: large enough that scheduling costs nothing, small enough
that two workers finish within a fraction of a second of each other."""

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
    """Made absolute by :func:`run_batch`: a Dask worker may run in another folder (or
    on another machine that sees the same shared storage)."""
    rule: str
    disabled_plugins: tuple[str, ...] = ()
    allowed_plugins: tuple[str, ...] | None = None
    """The ``PAYSPLIT_PLUGINS`` allow-list as the driver saw it (None: every plugin)."""
    as_of: dt.date | None = None
    """``--as-of``: the run date for every ledger (as ``paysplit apply --as-of``)."""
    today: dt.date | None = None
    """The date the run started (set by :func:`run_batch`): the run date of a ledger
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
            position = 0
            while True:
                wanted = chunk_size - counted
                available = block.count(b"\n", position)
                if available < wanted:
                    counted += available
                    break
                for _ in range(wanted):
                    position = block.index(b"\n", position) + 1
                end = base + position
                yield start, end, first_line, chunk_size
                start, first_line, counted = end, first_line + chunk_size, 0
            base += len(block)
        if base > start:  # the lines after the last full chunk
            stream.seek(base - 1)
            unterminated = stream.read(1) != b"\n"
            yield start, base, first_line, counted + (1 if unterminated else 0)


def plan_chunks(inputs: Sequence[InputFile], chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[Chunk]:
    """Every input's account lines as chunks, numbered in input order."""
    chunks: list[Chunk] = []
    for file in inputs:
        for start, end, first_line, lines in scan_lines(file.path, chunk_size):
            chunks.append(Chunk(len(chunks), file, start, end, first_line, lines))
    return chunks


# --- the work of one process ----------------------------------------------------------
def _load_rules(spec: BatchSpec) -> RuleSet:
    """Load the plugins and compile the rule files, as every operation does."""
    plugin_manager: Any = importlib.import_module("paysplit.plugin_manager")
    compiler: Any = importlib.import_module("paysplit.compiler")
    allowed = None if spec.allowed_plugins is None else list(spec.allowed_plugins)
    plugins = plugin_manager.load(disabled=list(spec.disabled_plugins), allowed=allowed)
    rules: RuleSet = compiler.load_rules(list(spec.rule_files), plugins)
    return rules


class _Out:
    """Where one chunk's lines go: the plans and the errors stream."""

    __slots__ = ("errors", "plans")

    def __init__(self, plans: IO[bytes], errors: IO[bytes]) -> None:
        self.plans = plans
        self.errors = errors


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _error_line(
    file: InputFile,
    line: int,
    account: str | None,
    kind: str,
    reason: str,
    **more: Any,
) -> bytes:
    record: dict[str, Any] = {
        "file": file.name,
        "line": line,
        "account": account,
        "kind": kind,
        "reason": reason,
    }
    record.update(more)
    return (_dumps(record) + "\n").encode("utf-8")


class Worker:
    """One process's share of a run: the rules compiled once, then chunk after chunk."""

    def __init__(self, spec: BatchSpec) -> None:
        self.spec = spec
        self.rules = _load_rules(spec)
        rule = self.rules.rule(spec.rule)
        if rule is None:
            known = ", ".join(sorted(self.rules.rules)) or "none"
            files = ", ".join(self.rules.files) or "the rule files"
            raise UsageError(f"there is no rule {spec.rule} in {files} (rules: {known})")
        self.rule: CompiledRule = rule
        self._request_base = request_base(self.rules)
        self.kernel = kernel_for(rule, self._request_base)
        """The rule's fast path (:mod:`paysplit.rule_kernel`), when it has one."""
        self.fast_path_accounts = 0
        """Accounts whose plans :attr:`kernel` made, in this process so far."""
        self._headers: dict[tuple[str, int, int], tuple[LedgerHeader, dict[str, Any]]] = {}

    # -- headers ---------------------------------------------------------------------
    def header(self, path: str) -> tuple[LedgerHeader, dict[str, Any]]:
        """The input's header (validated once per process and file) and its ledger fields."""
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        cached = self._headers.get(key)
        if cached is None:
            header, _ = iter_jsonl(path)
            fields = {name: getattr(header, name) for name in LedgerHeader.model_fields}
            cached = (header, fields)
            self._headers = {key: cached}  # one input at a time: keep only the latest
        return cached

    def run_date(self, header: LedgerHeader) -> dt.date:
        return self.spec.as_of or header.practice.as_of or self.spec.today or dt.date.today()

    # -- chunks ----------------------------------------------------------------------
    def run_chunk(self, chunk: Chunk, plans: IO[bytes], errors: IO[bytes]) -> Counts:
        """Read the chunk's lines one at a time, and write plans and errors as they come."""
        counts = Counts()
        fast_before = self.fast_path_accounts
        out = _Out(plans, errors)
        header, fields = self.header(chunk.file.path)
        run_date = self.run_date(header)
        with open(chunk.file.path, "rb") as stream:
            stream.seek(chunk.start)
            left = chunk.end - chunk.start
            line_no = chunk.first_line
            while left > 0:
                raw = stream.readline(left)
                if not raw:
                    break
                left -= len(raw)
                if raw.strip():
                    self.run_account(
                        chunk.file, raw, line_no, header, fields, run_date, out, counts
                    )
                line_no += 1
        counts.fast_path = self.fast_path_accounts - fast_before
        return counts

    def run_account(
        self,
        file: InputFile,
        raw: bytes,
        line_no: int,
        header: LedgerHeader,
        fields: dict[str, Any],
        run_date: dt.date,
        out: _Out,
        counts: Counts,
    ) -> None:
        """One account line: validate, apply the rule to each payment in order, write."""
        counts.accounts += 1
        parsed = self.read_account(raw, line_no, header, f"{file.name} line {line_no}")
        if isinstance(parsed, LedgerError):
            counts.errors += 1
            out.errors.write(_invalid_line(file, line_no, raw, parsed))
            return
        try:
            plans = self.allocate_account(parsed, fields, run_date)
        except PaysplitError as error:
            # A plugin that failed, or a plan that cannot be applied: the account is
            # reported whole and none of its plans is written (they build on each other).
            counts.errors += 1
            reason = " ".join(line.strip() for line in error.render().splitlines())
            out.errors.write(_error_line(file, line_no, parsed.id, "failed", reason))
            return
        for payment_id, plan in plans:
            counts.payments += 1
            if plan.blocked is not None:
                counts.blocked += 1
                out.errors.write(
                    _error_line(
                        file,
                        line_no,
                        parsed.id,
                        "blocked",
                        plan.blocked.reason,
                        payment=payment_id,
                        clause=plan.blocked.clause,
                        plugin=plan.blocked.plugin,
                    )
                )
                continue
            counts.splits += len(plan.splits)
            counts.credits += len(plan.credits)
            out.plans.write(plan_line(parsed.id, line_no, payment_id, plan))

    @staticmethod
    def read_account(
        raw: bytes, line_no: int, header: LedgerHeader, where: str
    ) -> Account | LedgerError:
        """One account line, validated as :func:`paysplit.ledger_io.iter_jsonl` does
        (problem paths start at the account: ``charges[3].amount``)."""
        try:
            return account_from_line(raw, where, header, "", line_no)
        except LedgerError as error:
            return error

    def allocate_account(
        self, account: Account, fields: dict[str, Any], run_date: dt.date
    ) -> list[tuple[str, PlanDraft]]:
        """The rule applied to each of the account's payments in turn (the allocation step).

        Exactly :func:`paysplit.operations.apply_rule` per payment, on a ledger of this
        one account (the same request, :func:`paysplit.operations.payment_request`),
        each plan applied before the next payment (a blocked plan is not). The plans
        come back as the core's drafts: :meth:`PlanDraft.to_plan` is the plan
        ``apply_rule`` returns, :func:`plan_line` writes it without making the model.
        A rule with a fast path (:attr:`kernel`) runs there, with the same result.
        """
        figures = AccountFigures.of(account)  # once; then updated as plans are applied
        queue = payments_to_apply(account, figures)
        trace = self.spec.trace
        if self.kernel is not None:
            made = self.kernel.run_account(account, figures, run_date, queue, trace=trace)
            if made is not None:
                self.fast_path_accounts += 1
                return made
        plans: list[tuple[str, PlanDraft]] = []
        base = self._request_base
        rule = self.rule
        for position, payment_id in enumerate(queue, start=1):
            payment = next(p for p in account.payments if p.id == payment_id)
            request = payment_request(account, rule, payment, run_date, base, figures)
            plan = allocate_draft(request)
            if not trace:
                plan.trace = []
            plans.append((payment_id, plan))
            if position < len(queue) and plan.blocked is None and not plan.is_empty:
                account = apply_to_account(account, plan)  # the next payment sees its splits
                figures = figures.with_splits(account, (s[1:5] for s in plan.splits))
        return plans


def payments_to_apply(account: Account, figures: AccountFigures | None = None) -> list[str]:
    """Payments the batch applies the rule to: not void, not refunds, with unallocated
    credit; by payment date, then ledger order (``figures``: the account's, if known)."""
    if figures is None:
        figures = AccountFigures.of(account)
    queue = [
        (payment.date, position, payment.id)
        for position, payment in enumerate(account.payments)
        if not payment.void and payment.type == "payment" and figures.unallocated(payment) > 0
    ]
    queue.sort()
    return [payment_id for _, _, payment_id in queue]


def _invalid_line(file: InputFile, line_no: int, raw: bytes, error: LedgerError) -> bytes:
    account: str | None = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        doc = json.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            account = doc["id"]
    reason = "; ".join(str(p) for p in error.problems) or str(error)
    return _error_line(
        file,
        line_no,
        account,
        "invalid",
        reason,
        problems=[p.to_json() for p in error.problems],
    )


def plan_line(account_id: str, line_no: int, payment_id: str, plan: Plan | PlanDraft) -> bytes:
    """One line of a plans file: account, input line number, payment, and the plan as
    ``paysplit apply --json`` prints it (compact, serialised by pydantic-core in one call;
    a draft without making the model first, the same bytes)."""
    body = plan.to_json() if isinstance(plan, PlanDraft) else plan.model_dump_json().encode()
    head = f'{{"account":{_dumps(account_id)},"line":{line_no},"payment":{_dumps(payment_id)},'
    return b"".join((head.encode(), b'"plan":', body, b"}\n"))


_WORKERS: dict[BatchSpec, Worker] = {}


def worker_for(spec: BatchSpec) -> Worker:
    """This process's worker for the run (the rules are compiled on first use only)."""
    worker = _WORKERS.get(spec)
    if worker is None:
        worker = Worker(spec)
        _WORKERS.clear()
        _WORKERS[spec] = worker
    return worker


def run_chunk_to_parts(spec: BatchSpec, chunk: Chunk, staging: str) -> ChunkResult:
    """A worker process's task: the chunk's plans and errors into two part files."""
    worker = worker_for(spec)
    plans_part = os.path.join(staging, f"{chunk.index:09d}.plans")
    errors_part = os.path.join(staging, f"{chunk.index:09d}.errors")
    with open(plans_part, "wb") as plans, open(errors_part, "wb") as errors:
        counts = worker.run_chunk(chunk, plans, errors)
        plans_bytes, errors_bytes = plans.tell(), errors.tell()
    return ChunkResult(chunk.index, counts, plans_part, errors_part, plans_bytes, errors_bytes)


def _pool_task(task: tuple[BatchSpec, Chunk, str]) -> ChunkResult:
    return run_chunk_to_parts(*task)


# --- the output folder ---------------------------------------------------------------
class _Output:
    """The run's files: temporaries while it runs, renamed into place only at the end."""

    def __init__(self, out_dir: Path, inputs: Sequence[InputFile], chunks: Sequence[Chunk]):
        self.out_dir = out_dir
        self.token = f"{os.getpid()}.{secrets.token_hex(4)}"
        self.inputs = inputs
        self.chunks = chunks
        self.plans_tmp = [self._temporary(f.plans_name) for f in inputs]
        self.errors_tmp = self._temporary(ERRORS_FILE)
        self.summary_tmp = self._temporary(SUMMARY_FILE)
        self.staging: Path | None = None
        self.file_counts = [Counts() for _ in inputs]
        self.total = Counts()
        self._pending: dict[int, ChunkResult] = {}
        self._next = 0
        self._errors: IO[bytes] | None = None

    def _temporary(self, name: str) -> Path:
        return self.out_dir / f".{name}.{self.token}.tmp"

    def open(self) -> None:
        for path in self.plans_tmp:
            path.write_bytes(b"")
        self._errors = open(self.errors_tmp, "wb")  # noqa: SIM115 - closed in commit/discard

    @property
    def errors(self) -> IO[bytes]:
        assert self._errors is not None
        return self._errors

    def make_staging(self) -> str:
        self.staging = self.out_dir / f".paysplit-staging.{self.token}"
        self.staging.mkdir()
        return str(self.staging)

    def header_error(self, file: InputFile, error: LedgerError) -> None:
        problems = error.problems
        reason = "; ".join(f"header {p.path}: {p.message}".replace(" :", ":") for p in problems)
        self.errors.write(
            _error_line(
                file,
                1,
                None,
                "invalid",
                reason or str(error),
                problems=[p.to_json() for p in problems],
            )
        )
        self.file_counts[file.index].errors += 1
        self.total.errors += 1

    def counted(self, chunk: Chunk, counts: Counts) -> None:
        self.file_counts[chunk.file.index].add(counts)
        self.total.add(counts)

    def written(self, chunk: Chunk, counts: Counts) -> None:
        """A chunk this process wrote straight into the temporaries, in order."""
        assert chunk.index == self._next
        self.counted(chunk, counts)
        self._next += 1

    def accept(self, result: ChunkResult) -> None:
        """A chunk finished in a worker: append it, and every chunk after it now in order."""
        self._pending[result.index] = result
        while self._next in self._pending:
            ready = self._pending.pop(self._next)
            chunk = self.chunks[ready.index]
            self._append(ready.plans_part, ready.plans_bytes, self.plans_tmp[chunk.file.index])
            self._append_errors(ready.errors_part, ready.errors_bytes)
            self.counted(chunk, ready.counts)
            self._next += 1

    def _append(self, part: str | None, size: int, target: Path) -> None:
        if part is None:
            return
        self._check_part(part, size)
        with open(part, "rb") as source, open(target, "ab") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        os.unlink(part)

    def _append_errors(self, part: str | None, size: int) -> None:
        if part is None:
            return
        self._check_part(part, size)
        with open(part, "rb") as source:
            shutil.copyfileobj(source, self.errors, 1 << 20)
        os.unlink(part)

    @staticmethod
    def _check_part(part: str, size: int) -> None:
        try:
            seen = os.path.getsize(part)
        except OSError:
            seen = -1
        if seen != size:
            raise UsageError(
                f"a worker wrote {size} bytes to {part}, and this machine sees "
                f"{'no file' if seen < 0 else f'{seen} bytes'}: with a Dask cluster, "
                "--out must be on storage every worker and this machine share"
            )

    def commit(self, summary: Summary) -> None:
        """Rename every file into place: plans files, then errors.jsonl, then summary.json."""
        if self._next != len(self.chunks):
            raise RuntimeError(f"only {self._next} of {len(self.chunks)} chunks were written")
        self.errors.flush()
        os.fsync(self.errors.fileno())
        self.errors.close()
        text = json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n"
        self.summary_tmp.write_text(text, encoding="utf-8")
        for temporary, file in zip(self.plans_tmp, self.inputs, strict=True):
            _fsync(temporary)
            os.replace(temporary, self.out_dir / file.plans_name)
        os.replace(self.errors_tmp, self.out_dir / ERRORS_FILE)
        _fsync(self.summary_tmp)
        os.replace(self.summary_tmp, self.out_dir / SUMMARY_FILE)
        sync_folder(self.out_dir)
        self.discard()

    def discard(self) -> None:
        """Remove what is left of the run's temporaries (all of them, after a failure)."""
        if self._errors is not None and not self._errors.closed:
            self._errors.close()
        for path in (*self.plans_tmp, self.errors_tmp, self.summary_tmp):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


# --- engines ---------------------------------------------------------------------------
Progress = Callable[[int], None]
"""Called with the number of account lines just finished."""


def _run_in_process(
    spec: BatchSpec, chunks: Sequence[Chunk], output: _Output, progress: Progress | None
) -> None:
    worker = worker_for(spec)
    current: tuple[int, IO[bytes]] | None = None
    try:
        for chunk in chunks:
            if current is None or current[0] != chunk.file.index:
                if current is not None:
                    current[1].close()
                stream = open(output.plans_tmp[chunk.file.index], "ab")  # noqa: SIM115
                current = (chunk.file.index, stream)
            output.written(chunk, worker.run_chunk(chunk, current[1], output.errors))
            if progress is not None:
                progress(chunk.lines)
    finally:
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
    chunks: Sequence[Chunk],
    output: _Output,
    workers: int,
    progress: Progress | None,
) -> None:
    staging = output.make_staging()
    tasks = [(spec, chunk, staging) for chunk in chunks]
    context = _pool_context()
    pool = context.Pool(processes=workers)
    try:
        for result in pool.imap_unordered(_pool_task, tasks, chunksize=1):
            output.accept(result)
            if progress is not None:
                progress(chunks[result.index].lines)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _dask_task(chunk: Chunk, spec: BatchSpec, staging: str) -> ChunkResult:
    return run_chunk_to_parts(spec, chunk, staging)


def _run_dask(
    spec: BatchSpec,
    chunks: Sequence[Chunk],
    output: _Output,
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
    staging = output.make_staging()
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
            # a tenth of the CPU of this pure-Python work. A batch has no use for it.
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False}))
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        bag = dask_bag.from_sequence(chunks, npartitions=len(chunks)).map(
            _dask_task, spec=spec, staging=staging
        )
        futures = client.compute(bag.to_delayed())
        for future in distributed.as_completed(futures):
            for result in future.result():
                output.accept(result)
                if progress is not None:
                    progress(chunks[result.index].lines)


# --- a run -----------------------------------------------------------------------------
def run_batch(
    spec: BatchSpec,
    inputs: Sequence[str],
    out_dir: str | Path,
    *,
    engine: Engine = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], Progress | None] | None = None,
) -> Summary:
    """Run the batch and write its files; raise :class:`UsageError` for bad arguments.

    ``progress``, when given, is called once with the total number of account lines
    and returns the callback that is then told how many lines each finished chunk had.
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
    if chunk_size < 1:
        raise UsageError(f"--chunk-size {chunk_size}: at least one account per chunk")
    spec = _resolved(spec)
    files = resolve_inputs(inputs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the batch's output")
    worker_for(spec)  # compile now: rule errors are usage errors before any work starts
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror})") from None

    good: list[InputFile] = []
    bad: list[tuple[InputFile, LedgerError]] = []
    for file in files:
        try:
            iter_jsonl(file.path)
        except LedgerError as problem:
            bad.append((file, problem))
        else:
            good.append(file)
    chunks = plan_chunks(good, chunk_size)
    output = _Output(out, files, chunks)
    try:
        output.open()
        for bad_file, bad_header in bad:
            output.header_error(bad_file, bad_header)
        advance = progress(sum(c.lines for c in chunks)) if progress is not None else None
        if not chunks:
            pass
        elif engine == "dask":
            _run_dask(spec, chunks, output, workers, scheduler, advance)
        elif workers == 1:
            _run_in_process(spec, chunks, output, advance)
        else:
            _run_pool(spec, chunks, output, workers, advance)
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
            chunks=len(chunks),
            trace=spec.trace,
        )
        output.commit(summary)
    except BaseException as error:
        output.discard()
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


def _resolved(spec: BatchSpec) -> BatchSpec:
    """The spec every worker gets: absolute rule paths and the run's start date fixed."""
    return dataclasses.replace(
        spec,
        rule_files=tuple(str(Path(p).resolve()) for p in spec.rule_files),
        today=spec.today or dt.date.today(),
    )
