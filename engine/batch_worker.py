"""The work of one batch process: a chunk of account lines read, allocated and written.

A :class:`Worker` compiles the run's rules once (:func:`worker_for` keeps one per
process), then for each account line of a chunk: validates it
(:func:`paysplit.ledger_io.account_from_line`), applies the rule to each payment in
turn (the fast path of :mod:`paysplit.rule_kernel` when the rule has one, else the
allocation core, exactly as ``paysplit apply`` would), and writes a plan line per
payment and an errors line per account it could not read or process. In a local
pool's worker (:func:`pool_task`) the chunk's plans go straight into the plans file
when every chunk before it is written, else into a part file
(:mod:`paysplit.batch_frontier`); in a Dask task (:func:`run_chunk_to_parts`) into part
files. The driver appends the part files in chunk order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import secrets
import signal
import threading
import time
from typing import IO, Any, Protocol

from paysplit.allocation import allocate_draft
from paysplit.apply import apply_to_account
from paysplit.batch_frontier import Frontier, PlanSpool
from paysplit.batch_output import compact_json, error_line
from paysplit.batch_spec import (
    BatchSpec,
    Chunk,
    ChunkResult,
    Counts,
    InputFile,
    input_changed,
)
from paysplit.errors import LedgerError, PaysplitError, UsageError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, LedgerHeader
from paysplit.ledger_io import account_from_line, iter_jsonl
from paysplit.operations import payment_request, request_base
from paysplit.plans import Plan, PlanDraft
from paysplit.rule_kernel import kernel_for
from paysplit.rules import CompiledRule, RuleSet

__all__ = [
    "STREAM_BUFFER",
    "Worker",
    "payments_to_apply",
    "plan_line",
    "pool_task",
    "run_chunk_to_parts",
    "share_frontier",
    "worker_for",
]


STREAM_BUFFER = 1 << 20
"""Bytes buffered by a worker's input and plans streams. Io's default (8 KiB) is less than
two plan lines with their trace (4-5 KB each) or two account lines: a system call every
line or two, each releasing and taking the GIL again. A mebibyte each way took 6-9% off
one worker's CPU time (docs/performance.md, round 11) and is the same for any input size."""


def _load_rules(spec: BatchSpec) -> RuleSet:
    """Load the plugins and compile the rule files, as every operation does."""
    plugin_manager: Any = importlib.import_module("paysplit.plugin_manager")
    compiler: Any = importlib.import_module("paysplit.compiler")
    allowed = None if spec.allowed_plugins is None else list(spec.allowed_plugins)
    plugins = plugin_manager.load(disabled=list(spec.disabled_plugins), allowed=allowed)
    rules: RuleSet = compiler.load_rules(list(spec.rule_files), plugins)
    return rules


class LineSink(Protocol):
    """Where a chunk's plan lines go: a file, or a :class:`PlanSpool`."""

    def write(self, lines: bytes, /) -> int: ...


class _Out:
    """Where one chunk's lines go: the plans and the errors stream."""

    __slots__ = ("errors", "plans")

    def __init__(self, plans: LineSink, errors: IO[bytes]) -> None:
        self.plans = plans
        self.errors = errors


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
        """Accounts whose plans :attr:`kernel` made through :meth:`allocate_account` (a
        chunk counts its own in its :class:`Counts`: a Dask worker may run chunks in
        several threads at once)."""
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
    def run_chunk(self, chunk: Chunk, plans: LineSink, errors: IO[bytes]) -> Counts:
        """Read the chunk's lines one at a time, and write plans and errors as they come."""
        counts = Counts()
        out = _Out(plans, errors)
        header, fields = self.header(chunk.file.path)
        run_date = self.run_date(header)
        with open(chunk.file.path, "rb", buffering=STREAM_BUFFER) as stream:
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
        if left or line_no - chunk.first_line != chunk.lines:
            raise input_changed(chunk.file)  # cut short, or its lines moved, since the scan
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
            plans, fast = self.allocate(parsed, fields, run_date)
        except PaysplitError as error:
            # A plugin that failed, or a plan that cannot be applied: the account is
            # reported whole and none of its plans is written (they build on each other).
            counts.errors += 1
            reason = " ".join(line.strip() for line in error.render().splitlines())
            out.errors.write(error_line(file, line_no, parsed.id, "failed", reason))
            return
        counts.fast_path += fast
        for payment_id, plan in plans:
            counts.payments += 1
            if plan.blocked is not None:
                counts.blocked += 1
                out.errors.write(
                    error_line(
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
        plans, fast = self.allocate(account, fields, run_date)
        self.fast_path_accounts += fast
        return plans

    def allocate(
        self, account: Account, fields: dict[str, Any], run_date: dt.date
    ) -> tuple[list[tuple[str, PlanDraft]], bool]:
        """:meth:`allocate_account`'s plans, and whether the fast path made them."""
        figures = AccountFigures.of(account)  # once; then updated as plans are applied
        queue = payments_to_apply(account, figures)
        trace = self.spec.trace
        if self.kernel is not None:
            made = self.kernel.run_account(account, figures, run_date, queue, trace=trace)
            if made is not None:
                return made, True
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
        return plans, False


def payments_to_apply(account: Account, figures: AccountFigures | None = None) -> list[str]:
    """Payments the batch applies the rule to: not void, not refunds, with unallocated
    credit; by payment date, then ledger order (``figures``: the account's, if known)."""
    if figures is None:
        figures = AccountFigures.of(account)
    # figures.unallocated(payment) > 0, inline: this runs for every account of a batch
    allocated, refunded = figures.split_total_by_payment, figures.refunded_by_payment
    queue = [
        (payment.date, position, payment.id)
        for position, payment in enumerate(account.payments)
        if not payment.void
        and payment.type == "payment"
        and payment.amount - allocated.get(payment.id, 0) - refunded.get(payment.id, 0) > 0
    ]
    if len(queue) > 1:
        queue.sort()
    return [payment_id for _, _, payment_id in queue]


def _invalid_line(file: InputFile, line_no: int, raw: bytes, error: LedgerError) -> bytes:
    account: str | None = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        doc = json.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            account = doc["id"]
    reason = "; ".join(str(p) for p in error.problems) or str(error)
    return error_line(
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
    account, payment = compact_json(account_id), compact_json(payment_id)
    head = f'{{"account":{account},"line":{line_no},"payment":{payment},'
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


def _part_files(staging: str, chunk: Chunk) -> tuple[str, str]:
    """A chunk's part files, named for this attempt: Dask runs a chunk again when the
    worker holding its result dies, and the new attempt must not truncate the files of
    a result the driver already has."""
    attempt = f"{chunk.index:09d}.{secrets.token_hex(4)}"
    return os.path.join(staging, f"{attempt}.plans"), os.path.join(staging, f"{attempt}.errors")


def run_chunk_to_parts(spec: BatchSpec, chunk: Chunk, staging: str) -> ChunkResult:
    """A Dask task: the chunk's plans and errors into two part files."""
    worker = worker_for(spec)
    plans_part, errors_part = _part_files(staging, chunk)
    with (
        open(plans_part, "wb", buffering=STREAM_BUFFER) as plans,
        open(errors_part, "wb") as errors,
    ):
        counts = worker.run_chunk(chunk, plans, errors)
        plans_bytes, errors_bytes = plans.tell(), errors.tell()
    return ChunkResult(chunk.index, counts, plans_part, errors_part, plans_bytes, errors_bytes)


_FRONTIER: Frontier | None = None


def share_frontier(frontier: Frontier, driver: int) -> None:
    """A pool worker's initializer: the frontier of the plans files it shares with the
    driver (:mod:`paysplit.batch_frontier`), and a worker that ends with its driver
    (``driver``: its process id, given by the driver, which may be gone already)."""
    global _FRONTIER
    _FRONTIER = frontier
    # A forked worker inherits the command line's SIGTERM handler (paysplit.cli), which
    # turns the signal into an exception: the pool stops a worker with SIGTERM, and it
    # must end, not report the exception and wait for its next chunk. Ctrl-C reaches
    # every process of the terminal's group: the driver stops the workers itself.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_end_with_driver, args=(driver,), name="paysplit-orphan", daemon=True
    ).start()


ORPHAN_CHECK = 0.5
"""Seconds between a pool worker's looks at whether its driver still runs."""


def _end_with_driver(driver: int) -> None:
    """End this worker once its driver is gone (killed with SIGKILL: nothing of it ran).
    A pool's workers share the pipe their chunks come through, so none of them sees it
    close; a forked worker would also keep the output folder's lock
    (:func:`paysplit.locking.folder_lock`) for good."""
    while os.getppid() == driver:
        time.sleep(ORPHAN_CHECK)
    os._exit(1)


def pool_task(task: tuple[BatchSpec, Chunk, str, str]) -> ChunkResult:
    """A local pool's task: the chunk's plans straight into ``plans_file`` when every chunk
    before it is written (``plans_part`` None in the result), else into a part file that
    the driver appends in turn; its errors into a part file."""
    spec, chunk, staging, plans_file = task
    frontier = _FRONTIER
    if frontier is None:
        raise RuntimeError("pool_task runs in a pool started with share_frontier")
    worker = worker_for(spec)
    plans_part, errors_part = _part_files(staging, chunk)
    plans = PlanSpool(plans_part, STREAM_BUFFER)
    try:
        with open(errors_part, "wb") as errors:
            counts = worker.run_chunk(chunk, plans, errors)
            errors_bytes = errors.tell()
        lines = plans.in_memory()
        if lines is not None and frontier.write_if_next(chunk.index, lines, plans_file):
            return ChunkResult(chunk.index, counts, None, errors_part, plans.size, errors_bytes)
        plans.to_part()
    finally:
        plans.close()
    return ChunkResult(chunk.index, counts, plans_part, errors_part, plans.size, errors_bytes)
