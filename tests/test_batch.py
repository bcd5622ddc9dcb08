"""Batch allocation (``paysplit batch``): same plans as ``apply``, whatever the workers.

The ledgers are JSON Lines files written here: a few hand-made accounts whose
outcome is known, and accounts from the seeded benchmark generator (payments
from patients and insurers, with and without a provider, void, refunded,
partly allocated; charges in every status, debits, estimates, adjustments).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from paysplit import (
    batch,
    batch_frontier,
    batch_output,
    batch_spec,
    batch_worker,
    locking,
    plugin_manager,
)
from paysplit.allocation import RuleRequest
from paysplit.apply import apply_plan
from paysplit.batch import BatchSpec, plan_chunks, resolve_inputs, run_batch, scan_lines
from paysplit.cli import cli, main
from paysplit.cli.batch import batch_command, spread_greedy
from paysplit.cli.common import Stops
from paysplit.compiler import load_rules
from paysplit.errors import PluginError
from paysplit.figures import AccountFigures
from paysplit.ledger import Ledger, LedgerHeader
from paysplit.ledger_io import iter_jsonl
from paysplit.locking import LedgerLocked
from paysplit.operations import apply_rule

ROOT = Path(__file__).resolve().parent.parent
cli.add_command(batch_command)  # the same command paysplit.cli wires in

RULES = """\
settings:
    default unearned type prepayment

rule due_patient "Apply to charges DUE PATIENT, dependents too (oldest first)":
    oldest first where status in (due_patient, pending_patient)
    include dependents
    leftover credit due patient memo "Account credit"

rule careful "Due patient, never across doctors, never past unattached credit":
    oldest first where status in (due_patient, pending_patient), no cross-doctor
    block on unattached negative adjustments
"""


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "benchmarks/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()
HEADER: dict[str, Any] = GENERATE.header()


def _account(aid: str, **lists: Any) -> dict[str, Any]:
    return {"id": aid, "patients": [{"id": f"{aid}-P1", "name": "Jenny"}], **lists}


def _charge(aid: str, n: int, amount: str, *, date: str = "2025-01-10", **more: Any) -> Any:
    return {
        "id": f"{aid}-C{n}",
        "patient": f"{aid}-P1",
        "provider": "DR1",
        "date": date,
        "amount": amount,
        "status": "due_patient",
        **more,
    }


def _payment(aid: str, n: int, amount: str, *, date: str = "2025-02-01", **more: Any) -> Any:
    return {
        "id": f"{aid}-PAY{n}",
        "patient": f"{aid}-P1",
        "payer": "patient",
        "provider": "DR1",
        "date": date,
        "type": "payment",
        "amount": amount,
        **more,
    }


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """A JSON Lines ledger: the header, then each account (a dict, or a raw text line)."""
    text = [json.dumps(HEADER)]
    text += [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def generated(path: Path, accounts: int, seed: int = 11) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(GENERATE.lines(accounts, seed))
    return path


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "batch.rules"
    path.write_text(RULES, encoding="utf-8")
    return path


def spec(rules_file: Path, rule: str = "due_patient") -> BatchSpec:
    return BatchSpec(rule_files=(str(rules_file),), rule=rule)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file in the folder (temporaries and staging included) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --- the plans are apply's plans -----------------------------------------------------
def expected_plans(ledger_path: Path, rules_file: Path, rule: str) -> Iterator[dict[str, Any]]:
    """What ``apply_rule`` gives, one payment at a time in date order, each plan applied."""
    rules = load_rules([str(rules_file)], plugin_manager.load())
    header, accounts = iter_jsonl(ledger_path)
    fields = {name: getattr(header, name) for name in LedgerHeader.model_fields}
    for line_no, account in accounts:
        assert not isinstance(account, Exception), account
        figures = AccountFigures.of(account)
        queue = sorted(
            (p.date, n, p.id)
            for n, p in enumerate(account.payments)
            if not p.void and p.type == "payment" and figures.unallocated(p) > 0
        )
        ledger = Ledger.model_construct(**fields, accounts=(account,))
        for _, _, payment_id in queue:
            plan = apply_rule(ledger, rules, rule, payment_id=payment_id)
            if plan.blocked is not None:
                continue
            yield {"account": account.id, "line": line_no, "payment": payment_id, **plan.to_json()}
            ledger = apply_plan(ledger, plan)


@pytest.mark.parametrize("rule", ["due_patient", "careful"])
def test_batch_writes_the_plans_apply_makes_payment_by_payment(
    tmp_path: Path, rules_file: Path, rule: str
) -> None:
    ledger_path = generated(tmp_path / "practice.jsonl", 120)
    summary = run_batch(spec(rules_file, rule), [str(ledger_path)], tmp_path / "out")

    written = read_lines(tmp_path / "out" / "practice.plans.jsonl")
    got = [{k: v for k, v in line.items() if k != "plan"} | line["plan"] for line in written]
    want = list(expected_plans(ledger_path, rules_file, rule))
    assert got == want
    assert summary.counts.accounts == 120
    assert summary.counts.payments == len(want) + summary.counts.blocked
    assert summary.counts.splits == sum(len(p["splits"]) for p in want) > 100
    if rule == "due_patient":
        assert summary.counts.credits == sum(len(p["credits"]) for p in want) > 0
        assert summary.counts.blocked == 0
    else:
        assert summary.counts.blocked > 0  # the generator gives some accounts unattached credit


def test_each_payment_sees_the_splits_of_the_earlier_ones(tmp_path: Path, rules_file: Path) -> None:
    """Payments run by date (then ledger order), not in the order they are listed."""
    account = _account(
        "A1",
        charges=[_charge("A1", 1, "100.00", date="2025-01-01"), _charge("A1", 2, "50.00")],
        payments=[
            _payment("A1", 1, "80.00", date="2025-03-01"),
            _payment("A1", 2, "120.00", date="2025-02-01"),
            _payment("A1", 3, "30.00", date="2025-02-01"),
            _payment("A1", 4, "10.00", date="2025-01-01", void=True),
        ],
    )
    path = write_jsonl(tmp_path / "one.jsonl", [account])
    run_batch(spec(rules_file), [str(path)], tmp_path / "out")

    lines = read_lines(tmp_path / "out" / "one.plans.jsonl")
    assert [line["payment"] for line in lines] == ["A1-PAY2", "A1-PAY3", "A1-PAY1"]
    splits = [(s["payment"], s["charge"], s["amount"]) for x in lines for s in x["plan"]["splits"]]
    assert splits == [
        ("A1-PAY2", "A1-C1", "100.00"),
        ("A1-PAY2", "A1-C2", "20.00"),
        ("A1-PAY3", "A1-C2", "30.00"),
    ]
    assert lines[2]["plan"]["credits"][0]["amount"] == "80.00"  # nothing left to pay
    assert [line["line"] for line in lines] == [2, 2, 2]


# --- workers -------------------------------------------------------------------------
def test_two_workers_write_the_same_bytes_as_one(tmp_path: Path, rules_file: Path) -> None:
    first = generated(tmp_path / "north.jsonl", 90, seed=3)
    second = generated(tmp_path / "south.jsonl", 45, seed=4)
    inputs = [str(first), str(second)]
    one = run_batch(spec(rules_file, "careful"), inputs, tmp_path / "w1", chunk_size=7)
    two = run_batch(spec(rules_file, "careful"), inputs, tmp_path / "w2", workers=2, chunk_size=7)

    assert one.chunks == two.chunks == 13 + 7
    produced = tree(tmp_path / "w1")
    assert set(produced) == {
        "north.plans.jsonl",
        "south.plans.jsonl",
        "errors.jsonl",
        "summary.json",
    }
    again = tree(tmp_path / "w2")
    for name in ("north.plans.jsonl", "south.plans.jsonl", "errors.jsonl"):
        assert produced[name] == again[name], name
    assert one.counts == two.counts
    assert one.counts.blocked > 0 and one.counts.splits > 0
    assert set(again) == set(produced)  # no part files or temporaries left


@pytest.mark.parametrize("spool_limit", [None, 0], ids=["in memory", "spilled"])
def test_pool_tasks_finishing_in_any_order_write_one_workers_bytes(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, spool_limit: int | None
) -> None:
    # A pool's chunks, finished in an order two workers could finish them in: each
    # writes its plans into the plans file when it is next, else leaves a part file
    # that the driver appends in turn (paysplit.batch_frontier). With a spool limit
    # of 0 every chunk's lines go to its part file, even the next one's.
    if spool_limit is not None:
        monkeypatch.setattr(batch_frontier, "SPOOL_LIMIT", spool_limit)
    inputs = [
        str(generated(tmp_path / "north.jsonl", 40, seed=3)),
        str(generated(tmp_path / "south.jsonl", 20, seed=4)),
    ]
    one = run_batch(spec(rules_file, "careful"), inputs, tmp_path / "w1", chunk_size=7)
    files = resolve_inputs(inputs)
    chunks = plan_chunks(files, 7)
    assert len(chunks) == 6 + 3
    out = tmp_path / "pool"
    out.mkdir()
    output = batch_output.OutputFolder(out, files, chunks)
    output.open()
    staging = output.make_staging()
    frontier = batch_frontier.Frontier(multiprocessing.get_context("spawn"))
    # As share_frontier does in a pool's worker (not called here: it would set this
    # process's signals and watch its parent).
    monkeypatch.setattr(batch_worker, "_FRONTIER", frontier)
    resolved = batch._resolved(spec(rules_file, "careful"))
    finished = [1, 0, 3, 2, 4, 6, 5, 8, 7]  # 5 and 6 straddle the two files' boundary
    written_by_worker = []
    for index in finished:
        chunk = chunks[index]
        task = (resolved, chunk, staging, str(output.plans_tmp[chunk.file.index]))
        result = batch_worker.pool_task(task)
        written_by_worker.append(result.plans_part is None)
        output.accept(result, frontier)
    output.errors.flush()

    expected = [False, True, False, True, True, False, True, False, True]
    assert written_by_worker == [w and spool_limit is None for w in expected]
    assert frontier.next_index == len(chunks)
    produced = tree(tmp_path / "w1")
    assert produced["errors.jsonl"].count(b'"kind":"blocked"') > 0
    assert output.plans_tmp[0].read_bytes() == produced["north.plans.jsonl"]
    assert output.plans_tmp[1].read_bytes() == produced["south.plans.jsonl"]
    assert output.errors_tmp.read_bytes() == produced["errors.jsonl"]
    assert output.total == one.counts
    assert sorted(Path(staging).iterdir()) == []  # every part file appended and removed
    output.discard()


def test_chunk_size_changes_nothing_in_the_output(tmp_path: Path, rules_file: Path) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 40)
    run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "a", chunk_size=1)
    run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "b", chunk_size=1000)
    assert tree(tmp_path / "a")["p.plans.jsonl"] == tree(tmp_path / "b")["p.plans.jsonl"]


# --- the scan and the work overlap ----------------------------------------------------
def _scan_that_waits(
    monkeypatch: pytest.MonkeyPatch, first_chunk_done: threading.Event, waited: list[bool]
) -> None:
    """Each input's scan stops after its first chunk until that chunk is done."""
    real = batch_spec.scan_lines

    def scan(path: str, chunk_size: int) -> Iterator[tuple[int, int, int, int]]:
        for number, found in enumerate(real(path, chunk_size)):
            yield found
            if number == 0:
                waited.append(first_chunk_done.wait(timeout=30))

    monkeypatch.setattr(batch_spec, "scan_lines", scan)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_work_starts_on_the_first_chunk_while_the_scan_goes_on(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 9)
    plain = run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "plain", chunk_size=4)

    first_chunk_done = threading.Event()
    waited: list[bool] = []
    _scan_that_waits(monkeypatch, first_chunk_done, waited)
    told: list[tuple[int, int | None]] = []

    def progress(finished: int, total: int | None) -> None:
        told.append((finished, total))
        first_chunk_done.set()

    summary = run_batch(
        spec(rules_file),
        [str(ledger_path)],
        tmp_path / "out",
        workers=workers,
        chunk_size=4,
        progress=progress,
    )
    # A scan that had to finish before any work would have waited its 30 s in vain.
    assert waited == [True]
    assert told[0] == (4, None)  # the first chunk was done; the scan had not seen the rest
    assert told[-1] == (9, 9)
    # After each chunk, in the order they finished (two workers may finish the short
    # third chunk before the second), then once more with the total.
    finished = [lines for lines, _ in told]
    assert len(finished) == 4 and finished[2:] == [9, 9]
    assert finished[1] == 8 if workers == 1 else finished[1] in (5, 8)
    assert summary.chunks == plain.chunks == 3
    assert tree(tmp_path / "out")["p.plans.jsonl"] == tree(tmp_path / "plain")["p.plans.jsonl"]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_run_stops_its_scan_and_leaves_nothing(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 40)
    real = batch_spec.scan_lines

    def slow(path: str, chunk_size: int) -> Iterator[tuple[int, int, int, int]]:
        for found in real(path, chunk_size):
            yield found
            time.sleep(0.3)  # still scanning when the first chunk is done

    def interrupt(finished: int, total: int | None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_spec, "scan_lines", slow)
    with pytest.raises(KeyboardInterrupt):
        run_batch(
            spec(rules_file),
            [str(ledger_path)],
            tmp_path / "out",
            workers=workers,
            chunk_size=4,
            progress=interrupt,
        )
    assert not (tmp_path / "out").exists()
    assert [t.name for t in threading.enumerate() if t.name == "paysplit-scan"] == []


def test_two_workers_know_the_total_long_before_the_end(tmp_path: Path, rules_file: Path) -> None:
    # 1,000 one-line chunks: more tasks than the pipe to the workers holds (one or two
    # hundred of these), so a scan that waited on that pipe would find the total only near
    # the end (at 848-919, measured). A scan that counted the rest of its read block again
    # for every chunk (quadratic for one-line chunks, holding the GIL) found it at 193-420;
    # the scan as it is, at 1-15.
    ledger_path = generated(tmp_path / "p.jsonl", 1000)
    told: list[tuple[int, int | None]] = []
    run_batch(
        spec(rules_file),
        [str(ledger_path)],
        tmp_path / "out",
        workers=2,
        chunk_size=1,
        progress=lambda finished, total: told.append((finished, total)),
    )
    first_with_total = next(finished for finished, total in told if total is not None)
    assert first_with_total <= 100
    assert all(total == 1000 for _, total in told if total is not None)
    assert told[-1] == (1000, 1000)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_input_that_fails_while_it_is_scanned_stops_the_run_and_writes_nothing(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 12)
    out = tmp_path / "out"
    run_batch(spec(rules_file), [str(ledger_path)], out, chunk_size=4)
    before = tree(out)
    real = batch_spec.scan_lines

    def fails_after_one_chunk(path: str, chunk_size: int) -> Iterator[tuple[int, int, int, int]]:
        yield next(real(path, chunk_size))
        raise OSError(5, "Input/output error")  # as a failed read() says it: no file name

    monkeypatch.setattr(batch_spec, "scan_lines", fails_after_one_chunk)
    with pytest.raises(batch.BatchError) as stopped:
        run_batch(
            spec(rules_file, "careful"), [str(ledger_path)], out, workers=workers, chunk_size=4
        )
    assert str(stopped.value) == (
        f"the batch stopped: {ledger_path}: Input/output error; nothing was written "
        f"(files already in {out} are as they were)"
    )
    assert tree(out) == before  # same files, same bytes, no temporaries or part files


# --- bad lines, blocked accounts -------------------------------------------------------
def test_a_corrupt_line_and_a_blocked_account_leave_the_rest_alone(
    tmp_path: Path, rules_file: Path
) -> None:
    good = [
        _account(
            f"A{n}",
            charges=[_charge(f"A{n}", 1, "60.00")],
            payments=[_payment(f"A{n}", 1, "25.00")],
        )
        for n in range(1, 6)
    ]
    blocked = _account(
        "AB",
        charges=[_charge("AB", 1, "60.00")],
        adjustments=[{"id": "AB-ADJ1", "patient": "AB-P1", "amount": "-15.00"}],
        payments=[_payment("AB", 1, "25.00")],
    )
    bad_amount = _account(
        "AX", charges=[_charge("AX", 1, "12.345")], payments=[_payment("AX", 1, "5.00")]
    )
    lines: list[Any] = [
        good[0],
        good[1],
        '{"id": "A9", "patients": [{"id": "A9-P1"',  # cut off mid-line: line 4
        good[2],
        blocked,  # line 6
        "",  # a blank line is not an account
        bad_amount,  # line 8
        good[3],
        good[4],
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    summary = run_batch(spec(rules_file, "careful"), [str(path)], tmp_path / "out")

    plans = read_lines(tmp_path / "out" / "mixed.plans.jsonl")
    assert [(p["account"], p["line"]) for p in plans] == [
        ("A1", 2),
        ("A2", 3),
        ("A3", 5),
        ("A4", 9),
        ("A5", 10),
    ]
    assert all(p["plan"]["splits"][0]["amount"] == "25.00" for p in plans)
    errors = read_lines(tmp_path / "out" / "errors.jsonl")
    assert [(e["file"], e["line"], e["account"], e["kind"]) for e in errors] == [
        (str(path), 4, None, "invalid"),
        (str(path), 6, "AB", "blocked"),
        (str(path), 8, "AX", "invalid"),
    ]
    assert "not valid JSON" in errors[0]["reason"]
    assert "unattached negative adjustments" in errors[1]["reason"]
    assert errors[1]["payment"] == "AB-PAY1"
    assert errors[2]["problems"] == [
        {"path": "charges[0].amount", "message": "12.345 has more than two decimal places"}
    ]
    assert (summary.counts.accounts, summary.counts.errors, summary.counts.blocked) == (8, 2, 1)
    assert summary.counts.payments == 6
    stored = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {k: stored[k] for k in ("accounts", "payments", "splits", "blocked", "errors")} == {
        "accounts": 8,
        "payments": 6,
        "splits": 5,
        "blocked": 1,
        "errors": 2,
    }
    # `careful` blocks on the account's unattached credit (an operation guard): it has no
    # fast path, and the summary says every account ran on the general core.
    assert stored["fast_path"] == summary.counts.fast_path == 0
    assert stored["seconds"] >= 0


def test_chunks_run_in_threads_at_once_each_count_their_own_fast_path_accounts(
    tmp_path: Path, rules_file: Path
) -> None:
    # A Dask worker may run several chunks at once in threads of one process, on one
    # Worker: a chunk must count the accounts its own fast path made, not the process's.
    ledger_path = generated(tmp_path / "p.jsonl", 240)
    worker = batch_worker.Worker(spec(rules_file))
    assert worker.kernel is not None
    chunks = plan_chunks(resolve_inputs([str(ledger_path)]), 60)
    counted: dict[int, batch_spec.Counts] = {}

    def run(chunk: batch_spec.Chunk) -> None:
        part = tmp_path / str(chunk.index)
        with open(f"{part}.plans", "wb") as plans, open(f"{part}.errors", "wb") as errors:
            counted[chunk.index] = worker.run_chunk(chunk, plans, errors)

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(c.accounts, c.fast_path) for _, c in sorted(counted.items())] == [(60, 60)] * 4
    assert worker.fast_path_accounts == 0  # (only allocate_account adds to it)


def test_a_chunk_whose_input_changed_since_the_scan_stops_naming_it(
    tmp_path: Path, rules_file: Path
) -> None:
    # The chunk is read as the scan found it, or not at all: an input cut short, or whose
    # lines moved (a newline gone, the size the same), would lose accounts without a word.
    ledger_path = generated(tmp_path / "p.jsonl", 6)
    chunks = plan_chunks(resolve_inputs([str(ledger_path)]), 3)
    worker = batch_worker.Worker(spec(rules_file))
    content = ledger_path.read_bytes()
    newline = content.index(b"\n", chunks[1].start)  # ending the chunk's first line
    for changed in (
        content[: chunks[1].end - 10],
        content[:newline] + b" " + content[newline + 1 :],
    ):
        ledger_path.write_bytes(changed)
        with pytest.raises(OSError) as raised:
            worker.run_chunk(chunks[1], io.BytesIO(), io.BytesIO())
        assert raised.value.filename == str(ledger_path)
        assert raised.value.strerror == "the file changed while the batch read it"
    ledger_path.write_bytes(content)
    assert worker.run_chunk(chunks[1], io.BytesIO(), io.BytesIO()).accounts == 3


def test_an_account_a_plugin_fails_on_is_reported_whole_and_the_run_goes_on(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule has a fast path, which never calls allocate_draft: use the general one here
    # (a clause failing on the fast path sends the account to it: tests/test_rule_kernel.py).
    monkeypatch.setattr(batch_worker, "kernel_for", lambda rule, base: None)
    monkeypatch.setattr(batch_worker, "_WORKERS", {})
    ledger_path = generated(tmp_path / "p.jsonl", 12)
    run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "before")
    before = read_lines(tmp_path / "before" / "p.plans.jsonl")
    victim = next(
        line["account"]
        for line in before
        if sum(1 for other in before if other["account"] == line["account"]) > 1
    )
    real = batch_worker.allocate_draft
    calls: dict[str, int] = {}

    def second_payment_fails(request: RuleRequest) -> Any:
        account = request.account.id
        calls[account] = calls.get(account, 0) + 1
        if account == victim and calls[account] == 2:
            raise PluginError("paysplit.example", "clause 'x' failed in skip_reason: boom")
        return real(request)

    monkeypatch.setattr(batch_worker, "allocate_draft", second_payment_fails)
    summary = run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "out")

    after = read_lines(tmp_path / "out" / "p.plans.jsonl")
    assert after == [line for line in before if line["account"] != victim]
    errors = read_lines(tmp_path / "out" / "errors.jsonl")
    assert [(e["account"], e["kind"]) for e in errors] == [(victim, "failed")]
    assert errors[0]["line"] == next(x["line"] for x in before if x["account"] == victim)
    assert "plugin paysplit.example" in errors[0]["reason"] and "boom" in errors[0]["reason"]
    assert summary.counts.errors == 1 and summary.counts.accounts == 12


def test_a_file_whose_header_does_not_load_is_reported_and_the_others_run(
    tmp_path: Path, rules_file: Path
) -> None:
    good = generated(tmp_path / "good.jsonl", 5)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"format": "paysplit-ledger/1", "practice": {}}\n{"id": "A1"}\n')
    summary = run_batch(spec(rules_file), [str(broken), str(good)], tmp_path / "out")

    errors = read_lines(tmp_path / "out" / "errors.jsonl")
    assert [(e["file"], e["line"], e["kind"]) for e in errors] == [(str(broken), 1, "invalid")]
    assert errors[0]["reason"].startswith('header practice: "name" is required; ')
    assert 'header: "providers" is required' in errors[0]["reason"]
    assert (tmp_path / "out" / "broken.plans.jsonl").read_bytes() == b""
    assert summary.counts.accounts == 5
    assert summary.counts.errors == 1
    assert len(read_lines(tmp_path / "out" / "good.plans.jsonl")) == summary.counts.payments


# --- atomic output ---------------------------------------------------------------------
def test_a_run_that_fails_half_way_leaves_the_old_files_whole(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 30)
    out = tmp_path / "out"
    run_batch(spec(rules_file), [str(ledger_path)], out, chunk_size=4)
    before = tree(out)

    calls = {"n": 0}
    real = batch.Worker.run_account

    def crash_on_the_20th(self: batch.Worker, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError(28, "No space left on device")
        real(self, *args)

    monkeypatch.setattr(batch.Worker, "run_account", crash_on_the_20th)
    with pytest.raises(batch.BatchError, match="No space left on device; nothing was written"):
        run_batch(spec(rules_file, "careful"), [str(ledger_path)], out, chunk_size=4)
    assert tree(out) == before  # same files, same bytes, no temporaries


HOLD_THE_FOLDER = """
import sys
from paysplit.locking import folder_lock
with folder_lock(sys.argv[1], argv=["paysplit", "batch", "--out", sys.argv[1]]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_into_the_same_folder_gives_up_naming_the_first(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A nightly run and one started by hand into one folder: their files never mix.
    ledger_path = generated(tmp_path / "p.jsonl", 10)
    out = tmp_path / "out"
    run_batch(spec(rules_file), [str(ledger_path)], out)
    before = tree(out)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_FOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setenv("PAYSPLIT_LOCK_TIMEOUT", "0")
        with pytest.raises(LedgerLocked) as locked:
            run_batch(spec(rules_file, "careful"), [str(ledger_path)], out, workers=2)
        assert re.fullmatch(
            rf"{re.escape(str(out))} is being changed by process {holder.pid} on "
            rf"{re.escape(socket.gethostname())}, running `paysplit batch --out "
            rf"{re.escape(str(out))}`, since [0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9:]{{8}}; "
            r"waited 0 s \(PAYSPLIT_LOCK_TIMEOUT=0\) and wrote nothing\. Run the command "
            r"again when it is done \(its lock goes when that process ends\)",
            str(locked.value),
        )
        assert tree(out) == {**before, ".paysplit.lock": tree(out)[".paysplit.lock"]}
    finally:
        holder.kill()  # killed holding the lock: the kernel lets it go
        holder.wait()
    careful = run_batch(spec(rules_file, "careful"), [str(ledger_path)], out, workers=2)
    assert careful.rule == "careful"
    assert sorted(tree(out)) == ["errors.jsonl", "p.plans.jsonl", "summary.json"]


MAKE_HOLD_AND_REMOVE_THE_FOLDER = """
import os, sys
from paysplit.locking import folder_lock
os.mkdir(sys.argv[1])
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
os.rmdir(sys.argv[1])  # as a run that made the folder and then failed
"""


def test_a_run_waiting_for_the_folder_that_the_first_run_removes_makes_it_again(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 10)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", MAKE_HOLD_AND_REMOVE_THE_FOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    waiting = threading.Event()

    class Clock:  # the lock's clock: says when the second run has begun to wait
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            waiting.set()
            time.sleep(seconds)

    monkeypatch.setattr(locking, "time", Clock)
    monkeypatch.setenv("PAYSPLIT_LOCK_TIMEOUT", "30")
    finished: dict[str, Any] = {}

    def second_run() -> None:
        try:
            finished["summary"] = run_batch(spec(rules_file), [str(ledger_path)], out)
        except Exception as error:  # handed to the test's thread
            finished["error"] = error

    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        runner = threading.Thread(target=second_run)
        runner.start()
        assert waiting.wait(10)
        holder.communicate("", timeout=10)  # released; the folder is gone
    finally:
        holder.kill()
        holder.wait()
    runner.join(30)
    assert "error" not in finished, finished.get("error")
    assert finished["summary"].counts.accounts == 10
    assert sorted(tree(out)) == ["errors.jsonl", "p.plans.jsonl", "summary.json"]


DRIVER_WITH_SLOW_WORKERS = """
import os, sys, time
from paysplit import batch_worker
from paysplit.cli import main
marks = sys.argv[1]
def slow(self, chunk, *args):
    open(os.path.join(marks, f"worker.{os.getpid()}"), "w").close()
    time.sleep(60)
batch_worker.Worker.run_chunk = slow
sys.exit(main(sys.argv[2:]))
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no longer does); Linux's /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_workers_of_a_driver_killed_outright_end_and_let_the_folder_go(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kill -9 of the driver runs nothing of it: its workers, which share the pipe their
    # chunks come through, must see it is gone themselves, and a forked worker holds
    # the output folder's lock until it ends.
    ledger_path = generated(tmp_path / "p.jsonl", 20)
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    argv = ["batch", "--rules", str(rules_file), "--rule", "due_patient", "--in"]
    argv += [str(ledger_path), "--out", str(out), "--workers", "2", "--chunk-size", "4"]
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER_WITH_SLOW_WORKERS, str(marks), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(list(marks.iterdir())) < 2:  # both workers are in a chunk
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.02)
    workers = [int(mark.name.split(".")[1]) for mark in marks.iterdir()]
    driver.kill()
    driver.wait()
    try:
        while any(map(_running, workers)):
            assert time.monotonic() < deadline, "the workers outlived their driver"
            time.sleep(0.02)
    finally:
        for pid in filter(_running, workers):  # (only when the test failed)
            os.kill(pid, signal.SIGKILL)
    monkeypatch.setenv("PAYSPLIT_LOCK_TIMEOUT", "0")  # the lock went with the workers
    run_batch(spec(rules_file), [str(ledger_path)], out)
    assert sorted(tree(out)) == ["errors.jsonl", "p.plans.jsonl", "summary.json"]


def test_a_worker_whose_driver_died_before_it_started_watching_ends_at_once() -> None:
    # A spawned worker imports paysplit before its initializer runs: the driver may be
    # gone by then, and the worker's parent is already another process.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs, never this process's parent
    fork = multiprocessing.get_context("fork")
    frontier = batch_frontier.Frontier(fork)

    def a_worker_of(driver: int) -> None:
        batch_worker.share_frontier(frontier, driver)
        time.sleep(20)  # waiting for a chunk that will never come

    worker = fork.Process(target=a_worker_of, args=(gone.pid,))
    started = time.monotonic()
    worker.start()
    worker.join(20)
    assert worker.exitcode == 1 and time.monotonic() - started < 5


def test_a_second_stop_does_not_break_off_the_clean_up_of_the_first() -> None:
    stops = Stops()
    with pytest.raises(KeyboardInterrupt):
        stops.handle(signal.SIGINT, None)
    stops.handle(signal.SIGINT, None)  # during the clean-up: nothing raised
    stops.handle(signal.SIGTERM, None)
    assert stops.pending is None
    stops.reset()
    stops.hold()  # the files are being renamed into place: kept for the end
    stops.handle(signal.SIGTERM, None)
    assert stops.pending == signal.SIGTERM


def test_a_run_removes_what_a_run_killed_outright_left_in_the_folder(
    tmp_path: Path, rules_file: Path
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 10)
    out = tmp_path / "out"
    run_batch(spec(rules_file), [str(ledger_path)], out)
    before = tree(out)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(ended.stdout)  # a process that no longer runs, as a run killed by SIGKILL
    (out / f".p.plans.jsonl.{dead}.0123abcd.tmp").write_bytes(b"half a plans file")
    (out / f".errors.jsonl.{dead}.0123abcd.tmp").write_bytes(b"")
    staging = out / f".paysplit-staging.{dead}.0123abcd"
    staging.mkdir()
    (staging / "3.plans").write_bytes(b"a chunk's plans")
    # Kept: a live process's temporary (this one's), and what is not a run's at all.
    running = f".p.plans.jsonl.{os.getpid()}.89abcdef.tmp"
    (out / running).write_bytes(b"still being written")
    (out / "notes.txt").write_bytes(b"ours")
    (out / f".notes.{dead}.tmp").write_bytes(b"not a run's name")
    (out / f".notes.txt.{dead}.0123abcd.tmp").write_bytes(b"another program's temporary")
    (out / ".summary.json.99999999999999999999.0123abcd.tmp").write_bytes(b"no such pid")
    run_batch(spec(rules_file), [str(ledger_path)], out)
    after = tree(out)
    assert after.pop("summary.json") and before.pop("summary.json")  # (its seconds differ)
    assert after == {
        **before,
        running: b"still being written",
        "notes.txt": b"ours",
        f".notes.{dead}.tmp": b"not a run's name",
        f".notes.txt.{dead}.0123abcd.tmp": b"another program's temporary",
    }


def test_a_crashed_worker_process_leaves_no_part_files(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 30)

    def broken(self: batch.Worker, *args: Any) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr(batch.Worker, "run_account", broken)
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(batch, "_pool_context", lambda: fork)  # so the workers inherit it
    with pytest.raises(RuntimeError, match="worker died"):
        run_batch(spec(rules_file), [str(ledger_path)], tmp_path / "out", workers=2, chunk_size=4)
    assert not (tmp_path / "out").exists()  # created for the run, removed with its temporaries


@contextlib.contextmanager
def _fails_rather_than_hangs(seconds: int) -> Iterator[None]:
    """A run that would wait forever fails the test instead (SIGALRM in this thread)."""

    def hung(signum: int, frame: Any) -> None:
        raise AssertionError(f"the run still waited after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


WORKER_LOST = (
    "a worker process ended before it finished its chunk (it was killed, perhaps by the "
    "system for lack of memory); the run stopped and nothing was written. Run it again; "
    "if memory is short, with fewer --workers or a smaller --chunk-size"
)


@pytest.mark.parametrize("where", ["mid-chunk", "holding the plans files' lock"])
def test_a_worker_killed_mid_run_stops_the_run_with_one_message_and_nothing_written(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # A worker the system kills (SIGKILL: the OOM killer) never reports its chunk. A
    # multiprocessing.Pool waited for that chunk forever; now the run stops at once.
    ledger_path = generated(tmp_path / "p.jsonl", 60)
    out = tmp_path / "out"
    run_batch(spec(rules_file), [str(ledger_path)], out, chunk_size=4)
    before = tree(out)
    if where == "mid-chunk":
        real_run_chunk = batch.Worker.run_chunk

        def killed_on_chunk_5(self: batch.Worker, chunk: Any, *args: Any) -> Any:
            if chunk.index == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_run_chunk(self, chunk, *args)

        monkeypatch.setattr(batch.Worker, "run_chunk", killed_on_chunk_5)
    else:
        # Chunk 4 goes to a part file, which the driver appends under the lock; chunk
        # 5's worker takes the lock first, once chunks 0-3 are in, and is killed
        # holding it. The driver, waiting for that lock, must give up.
        real_run_chunk = batch.Worker.run_chunk
        real_write = batch_frontier.Frontier.write_if_next

        def killed_holding_the_lock(self: batch.Worker, chunk: Any, *args: Any) -> Any:
            if chunk.index == 5:
                frontier = batch_worker._FRONTIER
                assert frontier is not None
                while frontier.next_index < 4:
                    time.sleep(0.01)
                frontier._next.get_lock().acquire()
                time.sleep(0.5)  # the driver now waits for the lock
                os.kill(os.getpid(), signal.SIGKILL)
            if chunk.index == 4:
                time.sleep(0.2)  # finished after chunk 5's worker took the lock
            return real_run_chunk(self, chunk, *args)

        def chunk_4_to_a_part(self: batch_frontier.Frontier, index: int, *args: Any) -> bool:
            return False if index == 4 else real_write(self, index, *args)

        monkeypatch.setattr(batch.Worker, "run_chunk", killed_holding_the_lock)
        monkeypatch.setattr(batch_frontier.Frontier, "write_if_next", chunk_4_to_a_part)
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(batch, "_pool_context", lambda: fork)  # so the workers inherit it
    with _fails_rather_than_hangs(60), pytest.raises(batch.BatchError) as raised:
        run_batch(spec(rules_file), [str(ledger_path)], out, workers=2, chunk_size=4)
    assert str(raised.value) == WORKER_LOST
    assert tree(out) == before  # same files, same bytes, no temporaries, no staging


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_worker_ends_the_command_with_one_line_and_exit_2(
    tmp_path: Path, rules_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, signum: int
) -> None:
    # Chunk 2's worker is killed while the other worker is in the middle of chunk 3:
    # that one is stopped too, and the command ends at once, without waiting for chunk
    # 3. A worker ends on SIGTERM, where the command line's own process catches it.
    ledger_path = generated(tmp_path / "p.jsonl", 30)
    busy = tmp_path / "chunk 3 started"
    real_run_chunk = batch.Worker.run_chunk

    def killed_on_chunk_2(self: batch.Worker, chunk: Any, *args: Any) -> Any:
        if chunk.index == 2:
            while not busy.exists():
                time.sleep(0.01)
            os.kill(os.getpid(), signum)
        if chunk.index == 3:
            busy.touch()
            time.sleep(20)
        return real_run_chunk(self, chunk, *args)

    monkeypatch.setattr(batch.Worker, "run_chunk", killed_on_chunk_2)
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(batch, "_pool_context", lambda: fork)
    argv = ["batch", "--rules", str(rules_file), "--rule", "due_patient"]
    argv += ["--in", str(ledger_path), "--out", str(tmp_path / "out"), "--workers", "2"]
    argv += ["--chunk-size", "4"]
    started = time.monotonic()
    with _fails_rather_than_hangs(60):
        code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == f"error: {WORKER_LOST}\n"
    assert time.monotonic() - started < 10
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("workers", "signum", "code", "message"),
    [
        (1, signal.SIGTERM, 143, "terminated: nothing was written"),
        (2, signal.SIGTERM, 143, "terminated: nothing was written"),
        (1, signal.SIGINT, 130, "interrupted: nothing was written"),
        (2, signal.SIGINT, 130, "interrupted: nothing was written"),
    ],
)
def test_a_stopped_command_leaves_the_old_output_whole_and_says_so(
    tmp_path: Path,
    rules_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    workers: int,
    signum: int,
    code: int,
    message: str,
) -> None:
    # A scheduler stopping the nightly job (SIGTERM, `timeout`) or Ctrl-C (SIGINT) in
    # the middle of the run: the command discards its temporaries and exits at once.
    ledger_path = generated(tmp_path / "p.jsonl", 40)
    out = tmp_path / "out"
    argv = ["batch", "--rules", str(rules_file), "--rule", "due_patient"]
    argv += ["--in", str(ledger_path), "--out", str(out), "--chunk-size", "4"]
    assert main([*argv, "--workers", "1"]) == 0
    before = tree(out)
    capsys.readouterr()
    driver = os.getpid()
    real_run_chunk = batch.Worker.run_chunk

    def stopped_at_chunk_3(self: batch.Worker, chunk: Any, *args: Any) -> Any:
        if chunk.index == 3:
            os.kill(driver, signum)
            time.sleep(5)  # a worker's chunk goes on until the driver stops it
        return real_run_chunk(self, chunk, *args)

    monkeypatch.setattr(batch.Worker, "run_chunk", stopped_at_chunk_3)
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(batch, "_pool_context", lambda: fork)
    started = time.monotonic()
    with _fails_rather_than_hangs(60):
        returned = main([*argv, "--workers", str(workers)])
    assert (returned, capsys.readouterr().err.strip()) == (code, message)
    assert time.monotonic() - started < 4  # stopped, not waiting for the chunk to end
    assert tree(out) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back by main()


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGTERM, 143, "terminated after the run's files were written (they are complete)"),
        (signal.SIGINT, 130, "interrupted after the run's files were written (they are complete)"),
    ],
)
def test_a_stop_while_the_files_are_renamed_waits_until_they_all_are(
    tmp_path: Path,
    rules_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    signum: int,
    code: int,
    message: str,
) -> None:
    # Renamed one after the other: a stop between two renames would leave this run's
    # plans beside the previous run's errors and summary.
    inputs = [
        str(generated(tmp_path / f"{name}.jsonl", 12, seed)) for name, seed in (("a", 1), ("b", 2))
    ]
    argv = ["batch", "--rules", str(rules_file), "--rule", "due_patient", "--in", *inputs]
    assert main([*argv, "--out", str(tmp_path / "expected")]) == 0
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--as-of", "2020-01-01"]) == 0  # other plans
    capsys.readouterr()
    real_replace = batch_output.os.replace

    def stopped_after_the_first_rename(source: Any, target: Any) -> None:
        real_replace(source, target)
        if str(target).endswith("a.plans.jsonl"):
            os.kill(os.getpid(), signum)
            time.sleep(0.1)  # delivered now: the handler runs before the next rename

    monkeypatch.setattr(batch_output.os, "replace", stopped_after_the_first_rename)
    returned = main([*argv, "--out", str(out)])
    assert (returned, capsys.readouterr().err.strip().splitlines()[-1]) == (code, message)
    written, expected = tree(out), tree(tmp_path / "expected")
    assert written.pop("summary.json") and expected.pop("summary.json")  # (seconds differ)
    assert written == expected


# --- appending a part file --------------------------------------------------------------
def _append_part(tmp_path: Path, part_bytes: bytes) -> bytes:
    part, target = tmp_path / "part", tmp_path / "target"
    part.write_bytes(part_bytes)
    target.write_bytes(b"lines already there\n")
    with open(part, "rb", buffering=0) as source, open(target, "r+b", buffering=0) as sink:
        sink.seek(0, 2)
        batch_output.append_file(source, sink, len(part_bytes))
    return target.read_bytes()


PART = bytes(range(256)) * 5_000 + b"the last line\n"  # 1.28 MB: more than one read


def test_a_part_is_appended_whole_after_what_the_file_held(tmp_path: Path) -> None:
    assert _append_part(tmp_path, PART) == b"lines already there\n" + PART


@pytest.mark.parametrize("kernel_copies", [True, False])
def test_a_part_cut_short_while_it_is_appended_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copies: bool
) -> None:
    # Its size was checked; then something cut it (a Dask worker's second attempt used
    # to reopen the same name). Appending what is left would lose lines without a word.
    if not kernel_copies:
        monkeypatch.delattr(batch_output.os, "copy_file_range", raising=False)
    part, target = tmp_path / "part", tmp_path / "target"
    part.write_bytes(b"one line\n")
    target.write_bytes(b"")
    with (
        open(part, "rb", buffering=0) as source,
        open(target, "r+b", buffering=0) as sink,
        pytest.raises(batch.BatchError) as stopped,
    ):
        batch_output.append_file(source, sink, 25)
    assert str(stopped.value) == (
        f"{part}: the part file lost 16 of its 25 bytes while it was being appended; "
        "nothing was written"
    )


def test_each_attempt_at_a_chunk_writes_parts_of_its_own(tmp_path: Path) -> None:
    chunk = batch.Chunk(3, batch.InputFile(0, "a.jsonl", "a.jsonl", "a.plans.jsonl"), 0, 9, 2, 1)
    first, second = (
        batch_worker._part_files(str(tmp_path), chunk),
        batch_worker._part_files(str(tmp_path), chunk),
    )
    assert first != second
    assert [Path(p).name[:10] for p in (*first, *second)] == ["000000003."] * 4


def test_a_part_is_appended_whole_where_the_kernel_cannot_copy_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No copy_file_range at all (not Linux), then one that gives up half way (another
    # file system): the rest is read and written from where the kernel stopped.
    monkeypatch.delattr(batch_output.os, "copy_file_range", raising=False)
    assert _append_part(tmp_path, PART) == b"lines already there\n" + PART
    monkeypatch.undo()
    copied: list[int] = []

    def gives_up_half_way(source: int, sink: int, count: int) -> int:
        if copied:
            raise OSError(18, "Invalid cross-device link")
        done = os.write(sink, os.read(source, count // 2))
        copied.append(done)
        return done

    monkeypatch.setattr(batch_output.os, "copy_file_range", gives_up_half_way)
    assert _append_part(tmp_path, PART) == b"lines already there\n" + PART
    assert copied == [len(PART) // 2]


# --- chunks ------------------------------------------------------------------------------
def test_chunks_cover_every_line_once_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    body = [b"header", b"a" * 3_000_000, b"", b"b", b"c", b"d", b"e"]
    path.write_bytes(b"\n".join(body))  # the last line has no newline
    for size in (1, 2, 3, 6, 50):
        chunks = list(scan_lines(str(path), size))
        assert chunks[0][0] == len(b"header\n")
        assert chunks[-1][1] == path.stat().st_size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
        assert [c[2] for c in chunks] == list(range(2, 8, size))
        assert sum(c[3] for c in chunks) == 6
        data = path.read_bytes()
        firsts = [data[c[0] : c[1]].split(b"\n")[0] for c in chunks]
        assert firsts == [body[c[2] - 1] for c in chunks]


def test_a_header_only_file_has_no_chunks_and_an_empty_plans_file(
    tmp_path: Path, rules_file: Path
) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [])
    assert plan_chunks(resolve_inputs([str(path)])) == []
    summary = run_batch(spec(rules_file), [str(path)], tmp_path / "out")
    assert summary.counts.accounts == 0
    assert (tmp_path / "out" / "empty.plans.jsonl").read_bytes() == b""


# --- the command line ------------------------------------------------------------------
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_runs_a_glob_and_prints_the_summary(
    tmp_path: Path, rules_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    generated(tmp_path / "in" / "a.jsonl", 6)
    generated(tmp_path / "in" / "b.jsonl", 4, seed=5)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "batch",
            "--rules",
            str(rules_file),
            "--rule",
            "due_patient",
            "--in",
            str(tmp_path / "in" / "*.jsonl"),
            "--out",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert stderr == ""  # no progress bar when stderr is not a terminal
    summary = json.loads(stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["accounts"] == 10
    assert [f["input"] for f in summary["files"]] == [
        str(tmp_path / "in" / "a.jsonl"),
        str(tmp_path / "in" / "b.jsonl"),
    ]
    assert sum(f["accounts"] for f in summary["files"]) == 10


def test_the_command_takes_several_files_after_one_in(
    tmp_path: Path, rules_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = generated(tmp_path / "a.jsonl", 3)
    b = generated(tmp_path / "b.jsonl", 2, seed=9)
    args = ["batch", "--in", str(a), str(b), "--rules", str(rules_file), "--rule", "due_patient"]
    code, stdout, stderr = run_cli(
        [*args, "--out", str(tmp_path / "out"), "--workers", "2"], capsys
    )
    assert code == 0, stderr
    assert re.search(r"^ *accounts +5 *$", stdout, re.MULTILINE), stdout
    # due_patient has a fast path, and it ran every account, in both workers.
    assert re.search(r"^ *fast path +5 *$", stdout, re.MULTILINE), stdout
    assert (tmp_path / "out" / "a.plans.jsonl").exists()
    assert (tmp_path / "out" / "b.plans.jsonl").exists()


def test_greedy_options_repeat_their_name() -> None:
    assert spread_greedy(["--in", "a", "b", "--rule", "x", "c", "--rules=r1", "r2"]) == [
        "--in",
        "a",
        "--in",
        "b",
        "--rule",
        "x",
        "c",
        "--rules=r1",
        "--rules",
        "r2",
    ]
    assert spread_greedy(["--in", "a", "--", "b"]) == ["--in", "a", "--", "b"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--in", "{missing}"], "no such file"),
        (["--in", "{folder}/*.nothing"], "no file matches"),
        (["--in", "{ledger}", "--scheduler", "tcp://x:1"], "use it with --engine dask"),
        (["--in", "{ledger}", "--workers", "0"], "--workers"),
        (["--in", "{ledger}", "--engine", "spark"], "--engine"),
        (["--in", "{ledger}", "--rule", "nope"], "there is no rule nope"),
        (["--in", "{ledger}", "--as-of", "tomorrow"], "is not a date"),
        (["--in", "{ledger}", "{twin}"], "would both write"),
    ],
)
def test_bad_arguments_exit_2_with_one_message_and_write_nothing(
    tmp_path: Path,
    rules_file: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    ledger_path = generated(tmp_path / "p.jsonl", 3)
    (tmp_path / "other").mkdir()
    twin = generated(tmp_path / "other" / "p.jsonl", 2)
    names = {
        "missing": str(tmp_path / "nope.jsonl"),
        "folder": str(tmp_path),
        "ledger": str(ledger_path),
        "twin": str(twin),
    }
    args = [a.format(**names) for a in extra]
    if "--rule" not in args:
        args += ["--rule", "due_patient"]
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["batch", "--rules", str(rules_file), "--out", str(out), *args], capsys
    )
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_rule_files_with_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text("rule r: oldest first where status in (due_patient\n")
    ledger_path = generated(tmp_path / "p.jsonl", 2)
    args = ["batch", "--rules", str(bad), "--rule", "r", "--in", str(ledger_path)]
    code, _, stderr = run_cli([*args, "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "bad.rules:1" in stderr
    assert not (tmp_path / "out").exists()


def test_the_run_date_is_fixed_once_for_ledgers_without_as_of(
    tmp_path: Path, rules_file: Path
) -> None:
    header = {**HEADER, "practice": {"name": "No date", "currency": "USD"}}
    account = _account(
        "A1", charges=[_charge("A1", 1, "10.00")], payments=[_payment("A1", 1, "5.00")]
    )
    path = tmp_path / "nodate.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(account) + "\n")
    run_batch(
        BatchSpec(rule_files=(str(rules_file),), rule="due_patient", today=_date("2030-01-02")),
        [str(path)],
        tmp_path / "out",
    )
    plan = read_lines(tmp_path / "out" / "nodate.plans.jsonl")[0]["plan"]
    assert plan["date"] == "2030-01-02"
    assert plan["splits"][0]["amount"] == "5.00"


def _date(text: str) -> Any:
    import datetime as dt

    return dt.date.fromisoformat(text)
