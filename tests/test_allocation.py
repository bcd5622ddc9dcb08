"""The allocation core, rule by rule: exact splits, cents, reasons and clause locations."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from alloc_support import (
    AS_OF,
    POOL,
    AdmitFees,
    BlockOnUnattached,
    Boom,
    ByAmountDesc,
    CoversAll,
    CreditDue,
    Family,
    Fixed,
    SameDoctorOnly,
    SameProvider,
    StatusIn,
    WholeAccount,
    WholeOnly,
    charge,
    check_invariants,
    ledger,
    payment,
    plan_of,
    rule,
    ruleset,
    split,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paysplit import operations as ops
from paysplit.allocation import RuleRequest, allocate
from paysplit.apply import apply_plan
from paysplit.core_clauses import OldestFirst, PoolSource, SmallestFirst
from paysplit.errors import PluginError
from paysplit.figures import AccountFigures
from paysplit.ledger import Adjustment, CreditNote, Ledger, Patient
from paysplit.ledger_io import dump_ledger, parse_ledger_text
from paysplit.plans import Plan
from paysplit.policy import Guard, Order, ProposedSplit, Target, Verdict, Warn

OLDEST = (OldestFirst(), "oldest first")
DUE_PATIENT = StatusIn(("due_patient", "pending_patient"))


def run(
    book: Ledger,
    the_rule: Any,
    payment_id: str | None = "PAY1",
    **extra: Any,
) -> Plan:
    account = book.accounts[0]
    paid = next((p for p in account.payments if p.id == payment_id), None)
    request = RuleRequest(
        account=account,
        rule=the_rule,
        run_date=AS_OF,
        payment=paid,
        opt_in_kinds=frozenset({"fee"}),
        **extra,
    )
    return allocate(request)


def splits_of(plan: Plan) -> list[tuple[str, str | None, str | None, int]]:
    return [(s.id, s.charge, s.installment, s.amount) for s in plan.splits]


def trace_of(plan: Plan) -> list[tuple[str | None, str, bool, int, str, str | None]]:
    return [(t.source, t.target, t.used, t.amount, t.reason, t.clause) for t in plan.trace]


FAMILY_BOOK = ledger(
    charges=[
        charge("C1", 10000, date="2025-01-01"),
        charge("C2", 5000, date="2024-12-01", status="due_insurance"),
        charge("C3", 7500, date="2025-01-20"),
        charge("C4", 2000, patient="P2", date="2024-11-01"),
    ],
    payments=[payment("PAY1", 15000)],
)


# --- a payment rule ----------------------------------------------------------
def test_oldest_first_pays_oldest_eligible_charges_and_traces_every_candidate() -> None:
    plan = run(FAMILY_BOOK, rule("due_patient", orders=[OLDEST], filters=[DUE_PATIENT]))
    assert splits_of(plan) == [("PAY1-1", "C1", None, 10000), ("PAY1-2", "C3", None, 5000)]
    assert plan.unallocated == {"PAY1": 0}
    assert plan.rule == "due_patient"
    assert trace_of(plan) == [
        (
            None,
            "C4",
            False,
            0,
            "C4 is a charge of P2, and rule due_patient pays only charges of P1 "
            "(no scope clause includes P2)",
            "rules/test.rules:1:1",
        ),
        (
            None,
            "C2",
            False,
            0,
            "status due_insurance is not due_patient or pending_patient",
            "rules/test.rules:4:18",
        ),
        ("PAY1", "C1", True, 10000, "paid 100.00 of the 100.00 due", "rules/test.rules:3:5"),
        ("PAY1", "C3", True, 5000, "paid 50.00 of the 75.00 due", "rules/test.rules:3:5"),
    ]


def test_credit_posted_before_the_operation_moves_as_transfers_with_two_legs() -> None:
    plan = run(FAMILY_BOOK, rule(orders=[OLDEST], filters=[DUE_PATIENT]))
    assert [s.transfer for s in plan.splits] == ["T-PAY1-1", "T-PAY1-2"]
    first = plan.transfers[0].model_dump(mode="json")
    assert first == {
        "id": "T-PAY1-1",
        "from_payment": "PAY1",
        "unearned_type": "prepayment",
        "legs": [{"target": None, "amount": "-100.00"}, {"target": "C1", "amount": "100.00"}],
    }
    for transfer in plan.transfers:
        assert sum(leg.amount for leg in transfer.legs) == 0


def test_a_payment_posted_by_the_operation_makes_no_transfer() -> None:
    plan = run(FAMILY_BOOK, rule(orders=[OLDEST]), new_payments=frozenset({"PAY1"}))
    assert [s.transfer for s in plan.splits] == [None, None]
    assert plan.transfers == ()


def test_split_ids_continue_after_the_payments_splits_and_never_collide() -> None:
    book = ledger(
        charges=[charge("C1", 10000), charge("C2", 10000, date="2025-01-11")],
        payments=[payment("PAY1", 20000), payment("PAY2", 5000)],
        splits=[split("PAY1-1", "PAY1", "C1", 3000), split("PAY1-3", "PAY2", "C1", 1000)],
    )
    plan = run(book, rule(orders=[OLDEST]))
    assert splits_of(plan) == [("PAY1-2", "C1", None, 6000), ("PAY1-4", "C2", None, 10000)]
    assert plan.unallocated == {"PAY1": 1000}


def test_reapplying_to_a_payment_with_nothing_unallocated_adds_nothing() -> None:
    book = ledger(
        charges=[charge("C1", 20000)],
        payments=[payment("PAY1", 5000)],
        splits=[split("PAY1-1", "PAY1", "C1", 5000)],
    )
    plan = run(book, rule(orders=[OLDEST], leftover=CreditDue()))
    assert plan.splits == () and plan.credits == () and plan.blocked is None
    assert plan.unallocated == {"PAY1": 0}
    assert [(w.message, w.clause) for w in plan.warnings] == [
        ("payment PAY1 has nothing unallocated: nothing to do", "rules/test.rules:2:5")
    ]
    assert trace_of(plan) == [
        ("PAY1", "C1", False, 0, "nothing left of PAY1 to pay C1", "rules/test.rules:2:5")
    ]


def test_leftover_becomes_a_credit_annotation_only_when_above_zero() -> None:
    book = ledger(charges=[charge("C1", 10000)], payments=[payment("PAY1", 25000)])
    plan = run(book, rule(orders=[OLDEST], leftover=CreditDue()))
    assert [c.model_dump(mode="json") for c in plan.credits] == [
        {
            "payment": "PAY1",
            "amount": "150.00",
            "due_to": "patient",
            "memo": "Account credit",
            "provider": "DR1",
            "office": None,
        }
    ]
    exact = ledger(charges=[charge("C1", 10000)], payments=[payment("PAY1", 10000)])
    assert run(exact, rule(orders=[OLDEST], leftover=CreditDue())).credits == ()


def test_paid_in_full_and_expected_from_insurance_are_never_targets() -> None:
    book = ledger(
        charges=[
            charge("C1", 10000, date="2025-01-01"),
            charge("C2", 10000, date="2025-01-02", estimate=10000),
            charge("C3", 10000, date="2025-01-03", estimate=4000),
        ],
        payments=[payment("PAY1", 20000), payment("PAY0", 10000)],
        splits=[split("PAY0-1", "PAY0", "C1", 10000)],
    )
    plan = run(book, rule(orders=[OLDEST]))
    assert splits_of(plan) == [("PAY1-1", "C3", None, 6000)]
    reasons = {t.target: t.reason for t in plan.trace if not t.used}
    assert reasons == {
        "C1": "C1 is paid in full",
        "C2": "C2 is expected to be paid by insurance (estimate 100.00 covers the 100.00 balance)",
    }


def test_an_insurance_payment_may_pay_the_whole_balance() -> None:
    book = ledger(
        charges=[charge("C1", 10000, estimate=8000, status="due_insurance")],
        payments=[payment("INS1", 9000, payer="insurance", provider=None)],
    )
    plan = run(book, rule(orders=[OLDEST]), payment_id="INS1")
    assert splits_of(plan) == [("INS1-1", "C1", None, 9000)]


def test_opt_in_kinds_are_targets_only_when_a_scope_admits_them() -> None:
    book = ledger(
        charges=[charge("F1", 2500, kind="fee", date="2024-01-01"), charge("C1", 10000)],
        payments=[payment("PAY1", 5000)],
    )
    plain = run(book, rule(orders=[OLDEST]))
    assert splits_of(plain) == [("PAY1-1", "C1", None, 5000)]
    assert trace_of(plain)[0] == (
        None,
        "F1",
        False,
        0,
        "F1 is of kind fee, which is a target only when a scope clause of the rule admits it",
        "rules/test.rules:1:1",
    )
    admitted = run(book, rule(orders=[OLDEST], scopes=[AdmitFees()]))
    assert splits_of(admitted) == [("PAY1-1", "F1", None, 2500), ("PAY1-2", "C1", None, 2500)]


def test_scope_clauses_widen_the_targets() -> None:
    family = run(FAMILY_BOOK, rule(orders=[OLDEST], scopes=[Family()], filters=[DUE_PATIENT]))
    assert splits_of(family) == [
        ("PAY1-1", "C4", None, 2000),
        ("PAY1-2", "C1", None, 10000),
        ("PAY1-3", "C3", None, 3000),
    ]


def test_a_preference_puts_matching_targets_first_without_forbidding_the_rest() -> None:
    book = ledger(
        charges=[
            charge("C1", 5000, provider="DR2", date="2025-01-01"),
            charge("C2", 5000, provider="DR1", date="2025-01-05"),
        ],
        payments=[payment("PAY1", 7000, provider="DR1")],
    )
    plain = run(book, rule(orders=[OLDEST]))
    assert splits_of(plain) == [("PAY1-1", "C1", None, 5000), ("PAY1-2", "C2", None, 2000)]
    preferred = run(book, rule(orders=[OLDEST], preferences=[SameProvider()]))
    assert splits_of(preferred) == [("PAY1-1", "C2", None, 5000), ("PAY1-2", "C1", None, 2000)]
    assert preferred.trace[0].reason == (
        "paid 50.00 of the 50.00 due; match provider: matching credit and charges come first"
    )
    assert preferred.trace[0].clause == "rules/test.rules:20:5"


def test_orders_decide_and_ties_break_by_ledger_position() -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 8000), charge("C3", 8000)],
        payments=[payment("PAY1", 10000)],
    )
    plan = run(book, rule(orders=[(ByAmountDesc(), "largest first")]))
    assert splits_of(plan) == [("PAY1-1", "C2", None, 8000), ("PAY1-2", "C3", None, 2000)]
    smallest = run(book, rule(orders=[(SmallestFirst(), "smallest first")]))
    assert splits_of(smallest) == [("PAY1-1", "C1", None, 3000), ("PAY1-2", "C2", None, 7000)]


class TwoKinds(Order):
    """A vendor's order whose keys cannot be compared: a number for C1, a text otherwise."""

    def sort_key(self, target: Target) -> Any:
        return 1 if target.charge.id == "C1" else "later"


def test_sort_keys_that_cannot_be_compared_are_the_orders_fault() -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 8000)], payments=[payment("PAY1", 10000)]
    )
    # the one order's keys alone, and the keys with a preference before them
    for preferences in ([], [SameProvider()]):
        with pytest.raises(PluginError) as caught:
            run(book, rule(orders=[(TwoKinds(), "two kinds")], preferences=preferences))
        assert "gave sort keys that cannot be compared" in str(caught.value)
        assert "'<' not supported between instances of 'str' and 'int'" in str(caught.value)
        assert caught.value.plugin == "paysplit (core)"


# --- guards ------------------------------------------------------------------
OASIS = ledger(
    charges=[
        charge("C1", 3000, provider="DR1", date="2025-01-01"),
        charge("C2", 2000, provider="DR2", date="2025-01-02"),
    ],
    payments=[payment("PAY2", 4000, provider="DR2")],
)


def test_a_split_guard_skips_a_target_in_an_automatic_rule_and_says_why() -> None:
    plan = run(
        OASIS,
        rule(orders=[OLDEST]),
        payment_id="PAY2",
        settings_guards=(_clause(SameDoctorOnly(), 61),),
    )
    assert splits_of(plan) == [("PAY2-1", "C2", None, 2000)]
    assert plan.unallocated == {"PAY2": 2000}
    assert trace_of(plan)[0] == (
        "PAY2",
        "C1",
        False,
        0,
        "credit of DR2 cannot pay DR1's charge C1",
        "rules/test.rules:61:5",
    )


def test_a_rule_guard_applies_like_a_settings_guard() -> None:
    plan = run(OASIS, rule(orders=[OLDEST], guards=[SameDoctorOnly()]), payment_id="PAY2")
    assert splits_of(plan) == [("PAY2-1", "C2", None, 2000)]
    assert plan.trace[0].clause == "rules/test.rules:30:5"


class AlwaysWarn(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        return Warn(f"look at {split.target.id}")


def test_a_warning_guard_allows_the_split_and_warns() -> None:
    plan = run(OASIS, rule(orders=[OLDEST], guards=[AlwaysWarn()]), payment_id="PAY2")
    assert splits_of(plan) == [("PAY2-1", "C1", None, 3000), ("PAY2-2", "C2", None, 1000)]
    assert [(w.message, w.clause) for w in plan.warnings] == [
        ("look at C1", "rules/test.rules:30:5"),
        ("look at C2", "rules/test.rules:30:5"),
    ]


def test_an_operation_guard_blocks_before_anything_is_decided() -> None:
    book = ledger(
        charges=[charge("C1", 10000)],
        payments=[payment("PAY1", 5000)],
        adjustments=[Adjustment(id="ADJ1", patient="P1", amount="-20.00")],
    )
    plan = run(book, rule(orders=[OLDEST], guards=[BlockOnUnattached()]))
    assert plan.blocked is not None
    assert plan.blocked.model_dump() == {
        "reason": "unattached negative adjustments: attach them or allocate manually",
        "clause": "rules/test.rules:30:5",
        "plugin": "test",
    }
    assert plan.splits == () and plan.transfers == ()
    assert plan.unallocated == {"PAY1": 5000}


def test_an_outcome_guard_withholds_a_part_payment() -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 2000, date="2025-01-11")],
        payments=[payment("PAY1", 4000)],
    )
    plan = run(book, rule(orders=[OLDEST], guards=[CoversAll()], leftover=CreditDue()))
    assert plan.splits == () and plan.credits == () and plan.blocked is None
    assert plan.unallocated == {"PAY1": 4000}
    assert [(w.message, w.clause) for w in plan.warnings] == [
        ("part payment: left for allocation by hand", "rules/test.rules:30:5")
    ]
    assert [(t.target, t.used, t.reason) for t in plan.trace] == [
        ("C1", False, "withheld: part payment: left for allocation by hand"),
        ("C2", False, "withheld: part payment: left for allocation by hand"),
    ]
    full = run(
        book.model_copy(
            update={
                "accounts": (
                    book.accounts[0].model_copy(update={"payments": (payment("PAY1", 5000),)}),
                )
            }
        ),
        rule(orders=[OLDEST], guards=[CoversAll()]),
    )
    assert splits_of(full) == [("PAY1-1", "C1", None, 3000), ("PAY1-2", "C2", None, 2000)]


def test_whole_charges_only_skips_what_it_cannot_pay_in_full_and_goes_on() -> None:
    book = ledger(
        charges=[
            charge("C1", 3000, date="2025-01-01"),
            charge("C2", 5000, date="2025-01-02"),
            charge("C3", 2000, date="2025-01-03"),
        ],
        payments=[payment("PAY1", 6000)],
    )
    plan = run(book, rule(orders=[OLDEST], guards=[WholeOnly()]))
    assert splits_of(plan) == [("PAY1-1", "C1", None, 3000), ("PAY1-2", "C3", None, 2000)]
    assert ("PAY1", "C2", False, 0, "cannot pay the whole 50.00", "rules/test.rules:30:5") in (
        trace_of(plan)
    )


# --- plugin results are checked ----------------------------------------------
def test_a_distribution_proposes_amounts() -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 5000, date="2025-01-11")],
        payments=[payment("PAY1", 6000)],
    )
    plan = run(book, rule(orders=[OLDEST], distribution=Fixed((("C2", 4000), ("C1", 1000)))))
    assert splits_of(plan) == [("PAY1-1", "C1", None, 1000), ("PAY1-2", "C2", None, 4000)]
    assert plan.unallocated == {"PAY1": 1000}


@pytest.mark.parametrize(
    ("proposals", "message"),
    [
        ((("C9", 100),), "proposed a split to 'C9', which is not a target here"),
        ((("C1", 3001),), "proposed 30.01 for C1, more than the 30.00 it allows"),
        ((("C1", -5),), "proposed -5 for C1: a split must be a positive amount"),
        ((("C1", 0),), "proposed 0 for C1: a split must be a positive amount"),
        ((("C1", 3000), ("C2", 3001)), "proposed 60.01 in all, more than the 60.00"),
        ((("C1", "10.00"),), "proposed '10.00' for C1"),
    ],
)
def test_the_engine_refuses_an_impossible_proposal_naming_the_plugin(
    proposals: tuple[tuple[str, Any], ...], message: str
) -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 5000, date="2025-01-11")],
        payments=[payment("PAY1", 6000)],
    )
    with pytest.raises(PluginError) as caught:
        run(book, rule(orders=[OLDEST], distribution=Fixed(proposals)))
    assert caught.value.plugin == "test"
    assert message in str(caught.value)
    assert str(caught.value).startswith("plugin test: clause 'distribute' (rules/test.rules:40:5)")


def test_an_exception_in_a_clause_becomes_a_plugin_error() -> None:
    with pytest.raises(PluginError) as caught:
        run(FAMILY_BOOK, rule(orders=[OLDEST], filters=[Boom()]))
    assert caught.value.plugin == "paysplit (core)"
    assert "failed in skip_reason: RuntimeError: kaboom" in str(caught.value)


class Rude(Guard):
    def check_split(self, split: ProposedSplit) -> Any:
        return "no"


def test_a_guard_returning_nonsense_is_refused() -> None:
    with pytest.raises(PluginError, match="returned 'no' from check_split"):
        run(OASIS, rule(orders=[OLDEST], guards=[Rude()]), payment_id="PAY2")


# --- installments --------------------------------------------------------------
def test_installments_oldest_due_first_split_across_the_plans_charges() -> None:
    book = ledger(
        charges=[charge("C1", 6000), charge("C2", 4000, date="2025-01-11")],
        payments=[payment("PAY1", 8000)],
        plans=[
            plan_of("PLAN1", ["C1", "C2"], [("I2", "2025-02-01", 5000), ("I1", "2025-01-01", 5000)])
        ],
    )
    plan = run(book, rule(orders=[OLDEST], to_installments=True))
    assert splits_of(plan) == [
        ("PAY1-1", "C1", "I1", 5000),
        ("PAY1-2", "C1", "I2", 1000),
        ("PAY1-3", "C2", "I2", 2000),
    ]
    assert [(t.target, t.amount) for t in plan.trace if t.used] == [("I1", 5000), ("I2", 3000)]
    assert plan.transfers[1].legs[1].target == "I2"


def test_an_installment_takes_no_more_than_the_plans_charges_allow() -> None:
    book = ledger(
        charges=[charge("C1", 6000)],
        payments=[payment("PAY1", 9000), payment("PAY0", 5000)],
        splits=[split("PAY0-1", "PAY0", "C1", 5000)],
        plans=[plan_of("PLAN1", ["C1"], [("I1", "2025-01-01", 6000)])],
    )
    plan = run(book, rule(to_installments=True))
    assert splits_of(plan) == [("PAY1-1", "C1", "I1", 1000)]


# --- pooled rules ----------------------------------------------------------------
POOL_BOOK = ledger(
    charges=[
        charge("C1", 6000, provider="DR1", date="2025-01-01"),
        charge("C4", 1000, patient="P2", provider="DR1", date="2025-01-02"),
    ],
    payments=[
        payment("PAY1", 4000, provider="DR2", date="2025-01-03", unearned_type="copay"),
        payment("PAY2", 4000, provider="DR1", date="2025-01-05"),
        payment("INS1", 9000, payer="insurance", provider=None, date="2025-01-01"),
    ],
)


def test_a_pool_draws_oldest_credit_first_each_source_keeping_its_type() -> None:
    plan = run(POOL_BOOK, rule("unearned", source=POOL, scopes=[WholeAccount()]), payment_id=None)
    assert splits_of(plan) == [
        ("PAY1-1", "C1", None, 4000),
        ("PAY2-1", "C1", None, 2000),
        ("PAY2-2", "C4", None, 1000),
    ]
    assert [(t.from_payment, t.unearned_type) for t in plan.transfers] == [
        ("PAY1", "copay"),
        ("PAY2", "prepayment"),
        ("PAY2", "prepayment"),
    ]
    assert plan.unallocated == {"PAY1": 0, "PAY2": 1000}


def test_a_pool_prefers_matching_credit_for_each_target() -> None:
    plan = run(
        POOL_BOOK,
        rule(source=POOL, scopes=[WholeAccount()], preferences=[SameProvider()]),
        payment_id=None,
    )
    assert splits_of(plan) == [
        ("PAY2-1", "C1", None, 4000),
        ("PAY1-1", "C1", None, 2000),
        ("PAY1-2", "C4", None, 1000),
    ]


def test_without_a_scope_a_charge_draws_only_its_own_patients_credit() -> None:
    plan = run(POOL_BOOK, rule(source=POOL), payment_id=None)
    assert splits_of(plan) == [("PAY1-1", "C1", None, 4000), ("PAY2-1", "C1", None, 2000)]
    assert (
        "PAY2",
        "C4",
        False,
        0,
        "credit of P1 (PAY2) may not pay P2's C4: no scope clause lets P1's credit pay it",
        "rules/test.rules:1:1",
    ) in trace_of(plan)
    family = run(POOL_BOOK, rule(source=POOL, scopes=[Family()]), payment_id=None)
    assert ("PAY2-2", "C4", None, 1000) in splits_of(family)


def test_a_pool_limited_to_one_unearned_type() -> None:
    plan = run(
        POOL_BOOK, rule(source=PoolSource("copay"), scopes=[WholeAccount()]), payment_id=None
    )
    assert splits_of(plan) == [("PAY1-1", "C1", None, 4000)]


def test_an_empty_pool_is_not_blocked_and_says_why() -> None:
    book = ledger(charges=[charge("C1", 1000)], payments=[payment("INS1", 500, payer="insurance")])
    plan = run(book, rule("pool", source=POOL), payment_id=None)
    assert plan.blocked is None and plan.splits == ()
    assert plan.warnings[0].message == (
        "account A1 has no unallocated credit that rule pool may draw on: nothing to do"
    )


def test_credit_annotated_due_to_insurance_stays_out_of_the_pool() -> None:
    book = ledger(
        charges=[charge("C1", 1000)],
        payments=[payment("PAY1", 500, credit=CreditNote(due_to="insurance"))],
    )
    assert run(book, rule(source=POOL), payment_id=None).splits == ()


def test_charge_selection_limits_the_targets() -> None:
    plan = run(
        POOL_BOOK, rule(source=POOL, scopes=[WholeAccount()]), payment_id=None, charge_ids=("C4",)
    )
    assert splits_of(plan) == [("PAY1-1", "C4", None, 1000)]


# --- determinism -----------------------------------------------------------------
def test_the_same_input_gives_the_same_plan_byte_for_byte() -> None:
    the_rule = rule(source=POOL, scopes=[WholeAccount()], preferences=[SameProvider()])
    first = run(POOL_BOOK, the_rule, payment_id=None).dumps()
    again = run(POOL_BOOK, dataclasses.replace(the_rule), payment_id=None).dumps()
    assert first == again


def _clause(impl: Any, line: int) -> Any:
    from alloc_support import clause

    return clause(impl, type(impl).__name__, line)


# --- properties ------------------------------------------------------------------

STATUSES = ("due_patient", "due_insurance")
PROVIDERS = ("DR1", "DR2")


@st.composite
def accounts(draw: st.DrawFn) -> tuple[Ledger, list[str]]:
    n_charges = draw(st.integers(0, 5))
    charges = [
        charge(
            f"C{n}",
            draw(st.integers(1, 20000)),
            patient=draw(st.sampled_from(("P1", "P2"))),
            provider=draw(st.sampled_from(PROVIDERS)),
            date=f"2025-01-{draw(st.integers(1, 28)):02d}",
            status=draw(st.sampled_from(STATUSES)),
            kind=draw(st.sampled_from(("procedure", "procedure", "fee"))),
            estimate=draw(st.integers(0, 5000)),
        )
        for n in range(1, n_charges + 1)
    ]
    payments = []
    splits = []
    for n in range(1, draw(st.integers(1, 3)) + 1):
        amount = draw(st.integers(1, 30000))
        pid = f"PAY{n}"
        payments.append(
            payment(
                pid,
                amount,
                patient=draw(st.sampled_from(("P1", "P2"))),
                payer=draw(st.sampled_from(("patient", "patient", "insurance"))),
                provider=draw(st.sampled_from((*PROVIDERS, None))),
                date=f"2025-02-{draw(st.integers(1, 28)):02d}",
                unearned_type=draw(st.sampled_from((None, "copay"))),
            )
        )
        if charges and draw(st.booleans()):
            target = draw(st.sampled_from(charges))
            taken = draw(st.integers(1, min(amount, target.amount)))
            splits.append(split(f"{pid}-1", pid, target.id, taken))
    book = ledger(
        charges=charges,
        payments=payments,
        splits=splits,
        patients=(Patient(id="P1"), Patient(id="P2", guarantor="P1")),
    )
    return book, [p.id for p in payments]


RULE_CHOICES = [
    rule("plain", orders=[OLDEST]),
    rule("due", orders=[OLDEST], filters=[DUE_PATIENT], scopes=[Family()], leftover=CreditDue()),
    rule(
        "guarded",
        orders=[(SmallestFirst(), "smallest first")],
        scopes=[WholeAccount()],
        guards=[SameDoctorOnly(), WholeOnly()],
        preferences=[SameProvider()],
    ),
    rule("pool", source=POOL, scopes=[WholeAccount()], preferences=[SameProvider()]),
    rule("pool_own", source=POOL),
]


def _check(book: Ledger, plan: Plan) -> None:
    before = AccountFigures.of(book.accounts[0])
    for made in plan.splits:
        assert made.amount > 0
    per_payment: dict[str, int] = {}
    per_charge: dict[str, int] = {}
    for made in plan.splits:
        per_payment[made.payment] = per_payment.get(made.payment, 0) + made.amount
        assert made.charge is not None
        per_charge[made.charge] = per_charge.get(made.charge, 0) + made.amount
    for payment_id, total in per_payment.items():
        paid = before.payments[payment_id]
        assert total <= before.unallocated(paid), "a rule never over-allocates"
    for charge_id, total in per_charge.items():
        assert total <= max(0, before.balance(before.charges[charge_id])), "never over-pays"
    assert len(plan.transfers) == sum(1 for s in plan.splits if s.transfer is not None)
    for transfer in plan.transfers:
        assert sum(leg.amount for leg in transfer.legs) == 0
        assert transfer.legs[0].amount < 0
    after = parse_ledger_text(dump_ledger(apply_plan(book, plan)), "after.json")
    assert check_invariants(after) == []
    figures = AccountFigures.of(after.accounts[0])
    for paid in after.accounts[0].payments:
        if paid.type == "payment" and not paid.void:
            assert (
                figures.allocated(paid) + figures.refunded(paid) + figures.unallocated(paid)
                == paid.amount
            )
        if paid.id in plan.unallocated:
            assert figures.unallocated(paid) == plan.unallocated[paid.id]
    total_before = sum(before.unallocated(p) for p in book.accounts[0].payments)
    total_after = sum(figures.unallocated(p) for p in after.accounts[0].payments)
    assert total_before - total_after == sum(s.amount for s in plan.splits), "money is conserved"
    assert Plan.model_validate(plan.to_json()).dumps() == plan.dumps()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), generated=accounts())
def test_any_rule_on_any_small_account_conserves_money(
    data: st.DataObject, generated: tuple[Ledger, list[str]]
) -> None:
    book, payment_ids = generated
    the_rule = data.draw(st.sampled_from(RULE_CHOICES))
    rules = ruleset(*RULE_CHOICES, opt_in=frozenset({"fee"}))
    if the_rule.pooled:
        plan = ops.apply_rule(book, rules, the_rule.name, account_id="A1")
    else:
        plan = ops.apply_rule(
            book, rules, the_rule.name, payment_id=data.draw(st.sampled_from(payment_ids))
        )
    assert plan.blocked is None
    _check(book, plan)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), generated=accounts())
def test_manual_allocation_within_credit_conserves_money(
    data: st.DataObject, generated: tuple[Ledger, list[str]]
) -> None:
    book, payment_ids = generated
    account = book.accounts[0]
    if not account.charges:
        return
    figures = AccountFigures.of(account)
    paid = figures.payments[data.draw(st.sampled_from(payment_ids))]
    target = data.draw(st.sampled_from(account.charges))
    room = min(figures.unallocated(paid), figures.allocatable(target, paid.payer))
    if room <= 0:
        return
    amount = data.draw(st.integers(1, room))
    plan = ops.allocate_manual(book, None, paid.id, charge_id=target.id, amount=amount)
    assert plan.warnings == ()
    _check(book, plan)
