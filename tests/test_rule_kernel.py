"""The batch's fast path for simple rules (:mod:`paysplit.rule_kernel`) changes nothing.

A ``from payment`` rule whose filters, order and split guards all have charge
forms runs on the charges themselves in ``paysplit batch``. On generated ledgers
(the strategy of ``test_properties.py``) and generated simple rules, these tests
check that it gives, payment after payment, the plans the general path gives (the
same bytes, trace included), that ``--trace none`` gives the same plans with an
empty trace, that it is really used (it did not fall back), and that every rule
it cannot run exactly goes to the general path.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_properties import AS_OF, BUILTIN, ledgers, profile

from paysplit.batch import BatchSpec, Worker, payments_to_apply
from paysplit.cli import main
from paysplit.errors import PaysplitError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, LedgerHeader
from paysplit.ledger_io import ledger_from_document
from paysplit.plans import PlanDraft
from paysplit.rule_kernel import kernel_for

NEGATIVE_WARN, NEGATIVE_ALLOW = "negative unallocated warn", "negative unallocated allow"
CONDITIONS = (
    "status in (due_patient, pending_patient)",
    "status not in (collection, due_insurance)",
    "status = due_patient",
    "status != pending_payer",
    "kind in (procedure, debit)",
    "kind = adjustment",
    "provider = DR1",
    "provider != DR2",
    "office in (MAIN, EAST)",
    'code != "D1110"',
    "amount >= 100",
    "amount < 5.99",
    "date > 2024-06-01",
    "date <= 2025-01-15",
    "insurance_estimate = 0",
    "appointment = AP1",
)


def conditions(leaves: tuple[str, ...] = CONDITIONS, depth: int = 2) -> st.SearchStrategy[str]:
    """``where`` conditions: ``leaves`` nested with and, or and not, ``depth`` levels deep."""
    if depth <= 0:
        return st.sampled_from(leaves)
    inner = conditions(leaves, depth - 1)
    return st.one_of(
        st.sampled_from(leaves),
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    )


@st.composite
def simple_rule_files(draw: st.DrawFn) -> str:
    """A rule file with one rule, ``simple``, that the fast path can run."""
    clauses: list[str] = []
    if draw(st.booleans()):
        clauses.append("from payment")
    order = draw(st.sampled_from([None, "oldest first", "newest first"]))
    if order:
        clauses.append(order)
    clauses += [f"where {draw(conditions())}" for _ in range(draw(st.integers(0, 2)))]
    clauses += draw(
        st.lists(
            st.sampled_from(["no cross-doctor", "include dependents", "include account"]),
            max_size=2,
            unique=True,
        )
    )
    if draw(st.booleans()):
        clauses.append("include debits")
    leftover = draw(
        st.sampled_from(
            [None, "leftover keep", "leftover credit due patient", "leftover credit due insurance"]
        )
    )
    if leftover:
        clauses.append(leftover)
    if not clauses:
        clauses.append("oldest first")
    settings = [
        s
        for s in (
            draw(st.sampled_from([None, NEGATIVE_WARN, NEGATIVE_ALLOW])),
            draw(st.sampled_from([None, "overpay charge warn"])),
            draw(st.sampled_from([None, "no cross-doctor"])),
            draw(st.sampled_from([None, "default unearned type copay"])),
        )
        if s
    ]
    lines = ["settings:", *(f"    {s}" for s in settings), ""] if settings else []
    lines.append(f"rule simple: {', '.join(draw(st.permutations(clauses)))}")
    return "\n".join(lines) + "\n"


@contextmanager
def _workers(text: str) -> Iterator[tuple[Worker, Worker]]:
    """Workers of the same rule file: with the trace, and with ``--trace none``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "simple.rules"
        path.write_text(text, encoding="utf-8")
        spec = BatchSpec(rule_files=(str(path),), rule="simple", allowed_plugins=tuple(BUILTIN))
        yield Worker(spec), Worker(dataclasses.replace(spec, trace=False))


@contextmanager
def _worker(text: str, trace: bool = True) -> Iterator[Worker]:
    with _workers(text) as (full, bare):
        yield full if trace else bare


def _general(worker: Worker, account: Account, fields: dict[str, Any]) -> Any:
    """The batch's allocation step on the general path (the kernel set aside)."""
    kernel, worker.kernel = worker.kernel, None
    try:
        return worker.allocate_account(account, fields, AS_OF)
    except PaysplitError as error:
        return error
    finally:
        worker.kernel = kernel


def _json(plans: list[tuple[str, PlanDraft]]) -> list[tuple[str, bytes]]:
    return [(payment_id, plan.to_json()) for payment_id, plan in plans]


@given(ledgers(), simple_rule_files(), st.booleans())
@profile(0.5)
def test_the_fast_path_gives_the_general_paths_plans(doc: Any, rule_text: str, trace: bool) -> None:
    ledger = ledger_from_document(doc, "generated")
    fields = {name: getattr(ledger, name) for name in LedgerHeader.model_fields}
    with _worker(rule_text, trace) as worker:
        kernel = worker.kernel
        assert kernel is not None, rule_text
        for account in ledger.accounts:
            want = _general(worker, account, fields)
            figures = AccountFigures.of(account)
            queue = payments_to_apply(account, figures)
            got = kernel.run_account(account, figures, AS_OF, queue, trace=trace)
            if isinstance(want, PaysplitError):  # (stock clauses never fail; kept honest)
                assert got is None
                continue
            assert got is not None, "the fast path fell back on stock clauses"
            assert _json(got) == _json(want)
            if not trace:
                assert all(plan.trace == [] for _, plan in got)


@given(ledgers(), simple_rule_files())
@profile(0.25)
def test_trace_none_keeps_everything_but_the_trace(doc: Any, rule_text: str) -> None:
    ledger = ledger_from_document(doc, "generated")
    fields = {name: getattr(ledger, name) for name in LedgerHeader.model_fields}
    with _workers(rule_text) as (full, bare):
        kernels = (full.kernel, bare.kernel)
        for fast in (True, False):  # the fast path and the general path alike
            full.kernel, bare.kernel = kernels if fast else (None, None)
            for account in ledger.accounts:
                try:
                    traced = full.allocate_account(account, fields, AS_OF)
                except PaysplitError:
                    continue
                plain = bare.allocate_account(account, fields, AS_OF)
                for (pid, with_trace), (qid, without) in zip(traced, plain, strict=True):
                    assert pid == qid
                    assert without.trace == []
                    with_trace.trace = []
                    assert without.to_json() == with_trace.to_json()


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("from unallocated, oldest first", "a pooled source"),
        ("oldest first, match provider", "a preference"),
        ("oldest first, only when payment covers balance", "an outcome guard"),
        ("oldest first, block on unattached negative adjustments", "an operation guard"),
        ("oldest first, whole charges only", "a split guard that weighs amounts"),
        ("largest first", "an order by the allocatable amount"),
        ("oldest first, where balance > 10", "a filter on the balance"),
        ("oldest first, where age > 30 days", "a filter on the age"),
        ("oldest first, where payment.payer = patient", "a filter on the payment"),
        ("order by code", "an explicit order"),
        ("to installments, oldest first", "installments"),
    ],
)
def test_rules_the_fast_path_cannot_run_exactly_use_the_general_path(rule: str, why: str) -> None:
    with _worker(f"rule simple: {rule}\n") as worker:
        assert worker.kernel is None, why


def test_the_benchmark_rule_runs_on_the_fast_path() -> None:
    text = "rule simple: oldest first where status in (due_patient, pending_patient), " + (
        "no cross-doctor\n"
    )
    with _worker(text) as worker:
        assert worker.kernel is not None
        assert worker.kernel.filters[0][2] == f"{worker.rules.files[0]}:1:27"


# --- a vendor's clause that breaks its promise only where the general path never looks --
def _skip_first_charge_only(charge: Charge) -> str | None:
    if charge.id == "C1":
        raise ValueError("C1 is not mine")
    return None


def test_a_charge_form_that_fails_sends_the_account_to_the_general_path() -> None:
    """A charge form is asked about every charge of the account, the general path only
    about those in scope: a form that raises makes the kernel give up the account (None),
    and the batch runs it on the general path, whose plans are what counts."""
    smith = Path("examples/ledgers/smith_family.json")
    ledger = ledger_from_document(json.loads(smith.read_text()), "smith")
    fields = {name: getattr(ledger, name) for name in LedgerHeader.model_fields}
    with _worker("rule simple: oldest first, where kind = procedure\n") as worker:
        kernel = worker.kernel
        assert kernel is not None
        account = ledger.accounts[0]
        want = _general(worker, account, fields)
        broken: Callable[[Charge], str | None] = _skip_first_charge_only
        clause, _, where, endings = kernel.filters[0]
        kernel.filters = ((clause, broken, where, endings),)
        figures = AccountFigures.of(account)
        queue = payments_to_apply(account, figures)
        assert any(c.id == "C1" for c in account.charges)
        assert kernel.run_account(account, figures, AS_OF, queue) is None
        got = worker.allocate_account(account, fields, AS_OF)
        assert _json(got) == _json(want)
        assert worker.fast_path_accounts == 0  # (the batch summary's fast_path)


def _key_fails_on_c1(charge: Charge) -> int:
    if charge.id == "C1":
        raise ValueError("C1 has no key")
    return charge.date.toordinal()


@pytest.mark.parametrize("trace", [True, False])
def test_a_vendor_order_is_asked_about_every_charge_as_the_general_path_asks(
    trace: bool,
) -> None:
    """Without the trace the kernel asks a stock order only about the charges it may pay;
    a vendor's order it asks about every charge in scope, as the general path does, so a
    key that fails on a charge a filter skips gives up the account on both paths alike."""
    smith = Path("examples/ledgers/smith_family.json")
    ledger = ledger_from_document(json.loads(smith.read_text()), "smith")
    with _worker("rule simple: oldest first, where status = due_insurance\n", trace) as worker:
        kernel = worker.kernel
        assert kernel is not None and kernel.order is not None
        account = ledger.accounts[0]
        c1 = next(c for c in account.charges if c.id == "C1")
        assert c1.status != "due_insurance"  # the filter skips it: no plan pays it
        figures = AccountFigures.of(account)
        queue = payments_to_apply(account, figures)
        assert kernel.run_account(account, figures, AS_OF, queue, trace=trace) is not None
        assert not kernel.key_every_charge  # a stock order

        order = worker.rule.orders[0]

        class VendorOrder(type(order.impl)):  # type: ignore[misc]
            def sort_key(self, target: Any) -> Any:
                return _key_fails_on_c1(target.charge)

            def charge_form(self) -> Any:
                return _key_fails_on_c1

        vendor = dataclasses.replace(order, impl=VendorOrder(), plugin="acme.orders")
        rule = dataclasses.replace(worker.rule, orders=(vendor,))
        vendors = kernel_for(rule, worker._request_base)
        assert vendors is not None and vendors.key_every_charge
        assert vendors.run_account(account, figures, AS_OF, queue, trace=trace) is None
        worker.rule = rule  # the general path with the vendor's order fails on C1 too
        failed = _general(
            worker, account, {n: getattr(ledger, n) for n in LedgerHeader.model_fields}
        )
        assert isinstance(failed, PaysplitError) and "C1 has no key" in str(failed)


def test_kernel_for_refuses_a_charge_form_that_is_not_a_function() -> None:
    with _worker("rule simple: oldest first\n") as worker:
        rule = worker.rule
        order = rule.orders[0]
        impl = order.impl

        class Odd(type(impl)):  # type: ignore[misc]
            def charge_form(self) -> Any:
                return "oldest"

        odd = dataclasses.replace(order, impl=Odd(), plugin="acme.orders")
        with pytest.raises(PaysplitError) as raised:
            kernel_for(dataclasses.replace(rule, orders=(odd,)), {})
        assert "acme.orders" in str(raised.value)
        assert "returned 'oldest' from charge_form (expected a function or None)" in str(
            raised.value
        )


def _vendor_filter(worker: Worker, predicate: Any) -> Any:
    """The rule's first filter as a vendor's, whose charge predicate is ``predicate``."""
    where = worker.rule.filters[0]

    class VendorFilter(type(where.impl)):  # type: ignore[misc]
        def charge_predicate(self) -> Any:
            return predicate

    impl = VendorFilter(where.impl.condition, where.impl.test, where.impl.charge_test)
    vendor = dataclasses.replace(where, impl=impl, plugin="acme.filters")
    return dataclasses.replace(worker.rule, filters=(vendor,))


def test_kernel_for_refuses_a_charge_predicate_that_is_not_a_function() -> None:
    with _worker("rule simple: oldest first, where kind = procedure\n") as worker:
        with pytest.raises(PaysplitError) as raised:
            kernel_for(_vendor_filter(worker, "procedure"), worker._request_base)
        assert "acme.filters" in str(raised.value)
        assert "returned 'procedure' from charge_predicate (expected a function or None)" in (
            str(raised.value)
        )


def test_a_charge_predicate_answering_neither_true_nor_false_gives_up_the_account() -> None:
    """Without the trace the kernel asks the predicate; an answer that is not True or False
    sends the account to the general path, which asks the filter itself."""
    smith = Path("examples/ledgers/smith_family.json")
    ledger = ledger_from_document(json.loads(smith.read_text()), "smith")
    account = ledger.accounts[0]
    figures = AccountFigures.of(account)
    queue = payments_to_apply(account, figures)
    with _worker("rule simple: oldest first, where kind = procedure\n", False) as worker:
        answers: list[Any] = []
        for answer in (True, 1, "yes", None):
            rule = _vendor_filter(worker, lambda charge, answer=answer: answer)
            kernel = kernel_for(rule, worker._request_base)
            assert kernel is not None
            answers.append(kernel.run_account(account, figures, AS_OF, queue, trace=False))
        assert answers[0] is not None
        assert answers[1:] == [None, None, None]


# --- the command line ----------------------------------------------------------------
def test_batch_trace_none_writes_the_plans_without_their_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(Path("examples/ledgers/smith_family.json").read_text())
    accounts = doc.pop("accounts")
    source = tmp_path / "smith.jsonl"
    source.write_text("\n".join([json.dumps(doc)] + [json.dumps(a) for a in accounts]) + "\n")
    out_full, out_bare = tmp_path / "full", tmp_path / "bare"
    common = ["batch", "--rules", "rules/apply_automatically.rules", "--rule", "due_patient"]
    common += ["--in", str(source)]
    assert main([*common, "--out", str(out_full)]) == 0
    assert main([*common, "--out", str(out_bare), "--trace", "none"]) == 0
    traced = [json.loads(x) for x in (out_full / "smith.plans.jsonl").read_text().splitlines()]
    plain = [json.loads(x) for x in (out_bare / "smith.plans.jsonl").read_text().splitlines()]
    assert traced and len(traced) == len(plain)
    assert any(line["plan"]["trace"] for line in traced)
    for with_trace, without in zip(traced, plain, strict=True):
        assert without["plan"]["trace"] == []
        with_trace["plan"]["trace"] = []
        assert without == with_trace
    summary_full = json.loads((out_full / "summary.json").read_text())
    summary_bare = json.loads((out_bare / "summary.json").read_text())
    assert (summary_full["trace"], summary_bare["trace"]) == ("full", "none")
    # due_patient has a fast path, and every account of the ledger ran on it.
    assert summary_full["fast_path"] == summary_bare["fast_path"] == len(accounts)
    assert summary_full["files"][0]["fast_path"] == len(accounts)
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x"), "--trace", "some"]) == 2
    assert "'some' is not one of 'full', 'none'" in capsys.readouterr().err


def test_a_charge_the_credit_never_reached_is_still_asked_of_the_guards() -> None:
    """With the trace, a charge after the credit ran out says why it got nothing: the
    guard that would have refused it (its reason and clause), else that nothing was
    left, as the general path says it."""
    doc = {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Test", "currency": "USD", "as_of": "2025-03-01"},
        "providers": [{"id": "DR1", "name": "A"}, {"id": "DR2", "name": "B"}],
        "accounts": [
            {
                "id": "A1",
                "patients": [{"id": "P1", "name": "P"}],
                "charges": [
                    {
                        "id": f"C{n}",
                        "patient": "P1",
                        "provider": provider,
                        "code": "D1",
                        "date": f"2024-0{n}-01",
                        "amount": "50.00",
                        "status": "due_patient",
                    }
                    for n, provider in ((1, "DR1"), (2, "DR2"), (3, "DR1"))
                ],
                "payments": [
                    {
                        "id": "PAY1",
                        "patient": "P1",
                        "payer": "patient",
                        "provider": "DR1",
                        "date": "2025-01-01",
                        "method": "cash",
                        "type": "payment",
                        "amount": "20.00",
                    }
                ],
            }
        ],
    }
    ledger = ledger_from_document(doc, "guarded")
    fields = {name: getattr(ledger, name) for name in LedgerHeader.model_fields}
    with _worker("rule simple: oldest first, no cross-doctor\n") as worker:
        account = ledger.accounts[0]
        ((_, plan),) = worker.allocate_account(account, fields, AS_OF)
        assert worker.fast_path_accounts == 1
        where = str(worker.rule.guards[0].location)
        assert [(e[1], e[2], e[3], e[4], e[5]) for e in plan.trace] == [
            ("C1", True, 2000, "paid 20.00 of the 50.00 due", worker.kernel.order_at),
            (
                "C2",
                False,
                0,
                "credit of DR1 cannot pay DR2's charge C2 (payment PAY1 was entered against DR1)",
                where,
            ),
            ("C3", False, 0, "nothing left of PAY1 to pay C3", worker.kernel.source_at),
        ]
        assert _json([("PAY1", plan)]) == _json(_general(worker, account, fields))
