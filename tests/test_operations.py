"""The library operations: apply, allocate, refund, unallocate, void, post-*; apply_plan."""

from __future__ import annotations

from typing import Any

import pytest
from alloc_support import (
    AS_OF,
    POOL,
    BlockOnUnattached,
    CreditDue,
    OneAppointment,
    OverAllocation,
    OverPay,
    SameDoctorOnly,
    StatusIn,
    WholeAccount,
    charge,
    check_invariants,
    d,
    figures_of,
    ledger,
    payment,
    plan_of,
    rule,
    ruleset,
    split,
)

from paysplit import operations as ops
from paysplit.apply import apply_plan, history_entry, record_history
from paysplit.core_clauses import OldestFirst
from paysplit.errors import UsageError
from paysplit.ledger import Adjustment, Appointment, Ledger
from paysplit.plans import Plan

OLDEST = (OldestFirst(), "oldest first")
DUE_PATIENT = rule(
    "due_patient",
    orders=[OLDEST],
    filters=[StatusIn(("due_patient", "pending_patient"))],
    leftover=CreditDue(),
)
POOLED = rule("allocate_unearned", source=POOL, scopes=[WholeAccount()], trigger="demand")
RULES = ruleset(DUE_PATIENT, POOLED, default_rule="due_patient")

BOOK = ledger(
    charges=[
        charge("C1", 10000, date="2025-01-01"),
        charge("C2", 5000, date="2025-01-05", provider="DR2"),
        charge("C3", 7500, date="2025-01-20"),
    ],
    payments=[payment("PAY1", 15000), payment("PAY2", 4000, provider="DR2", date="2025-01-10")],
    appointments=[Appointment(id="AP1", patient="P1"), Appointment(id="AP2", patient="P1")],
)


def applied(book: Ledger, plan: Plan) -> Ledger:
    """Apply a plan, check every invariant and that the plan's figures read back."""
    assert plan.blocked is None
    after = apply_plan(book, plan)
    assert check_invariants(after) == []
    figures = figures_of(after)
    for payment_id, amount in plan.unallocated.items():
        assert figures.unallocated(figures.payments[payment_id]) == amount, payment_id
    return after


def splits_of(plan: Plan) -> list[tuple[str, str, str | None, int]]:
    return [(s.id, s.payment, s.charge, s.amount) for s in plan.splits]


# --- apply -------------------------------------------------------------------
def test_apply_a_rule_to_a_payment() -> None:
    plan = ops.apply_rule(BOOK, RULES, "due_patient", payment_id="PAY1")
    assert plan.operation == "apply"
    assert splits_of(plan) == [
        ("PAY1-1", "PAY1", "C1", 10000),
        ("PAY1-2", "PAY1", "C2", 5000),
    ]
    after = applied(BOOK, plan)
    assert [s.id for s in after.accounts[0].splits] == ["PAY1-1", "PAY1-2"]
    assert after.accounts[0].splits[0].rule == "due_patient"
    assert after.accounts[0].splits[0].date == AS_OF
    assert after.accounts[0].splits[0].transfer == "T-PAY1-1"


def test_apply_uses_the_default_rule_and_as_of() -> None:
    plan = ops.apply_rule(BOOK, RULES, payment_id="PAY2", as_of=d("2025-06-01"))
    assert plan.rule == "due_patient" and plan.date == d("2025-06-01")


def test_apply_a_new_payment_posts_it_without_transfers() -> None:
    new = payment("PAY9", 12000, date="2025-03-01")
    plan = ops.apply_rule(BOOK, RULES, "due_patient", new_payment=new)
    assert plan.payments == (new,)
    assert [s.transfer for s in plan.splits] == [None, None]
    assert plan.unallocated == {"PAY9": 0}
    after = applied(BOOK, plan)
    assert after.accounts[0].payments[-1].id == "PAY9"


def test_a_leftover_credit_is_written_on_the_payment() -> None:
    new = payment("PAY9", 30000)
    plan = ops.post_payment(BOOK, RULES, new)
    assert [(c.payment, c.amount, c.due_to) for c in plan.credits] == [("PAY9", 7500, "patient")]
    after = applied(BOOK, plan)
    posted = after.accounts[0].payments[-1]
    assert posted.credit is not None and posted.credit.memo == "Account credit"
    assert figures_of(after).unallocated(posted) == 7500


def test_a_pooled_rule_runs_for_an_account_with_a_selection() -> None:
    plan = ops.apply_rule(BOOK, RULES, "allocate_unearned", account_id="A1", charge_ids=["C3"])
    assert splits_of(plan) == [("PAY2-1", "PAY2", "C3", 4000), ("PAY1-1", "PAY1", "C3", 3500)]
    assert [t.id for t in plan.transfers] == ["T-PAY2-1", "T-PAY1-1"]
    applied(BOOK, plan)


def test_a_pooled_rule_given_a_payment_draws_only_on_it() -> None:
    plan = ops.apply_rule(BOOK, RULES, "allocate_unearned", payment_id="PAY1")
    assert {s.payment for s in plan.splits} == {"PAY1"}


def test_a_blocked_rule_gives_a_blocked_plan_that_cannot_be_applied() -> None:
    book = BOOK.model_copy(
        update={
            "accounts": (
                BOOK.accounts[0].model_copy(
                    update={"adjustments": (Adjustment(id="ADJ1", patient="P1", amount="-5"),)}
                ),
            )
        }
    )
    rules = ruleset(rule("r", guards=[BlockOnUnattached()]))
    plan = ops.apply_rule(book, rules, "r", payment_id="PAY1")
    assert plan.blocked is not None and plan.splits == ()
    with pytest.raises(UsageError, match="a blocked plan cannot be applied"):
        apply_plan(book, plan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"rule_name": "nope", "payment_id": "PAY1"},
            "there is no rule nope in rules/test.rules (rules: allocate_unearned, due_patient)",
        ),
        ({"payment_id": "PAY7"}, "there is no payment PAY7 in the ledger"),
        (
            {"account_id": "A9", "rule_name": "allocate_unearned"},
            "there is no account A9 in the ledger (accounts: A1)",
        ),
        ({"account_id": "A1"}, "rule due_patient pays from a payment"),
        ({"payment_id": "PAY1", "account_id": "A1"}, "apply needs exactly one of"),
        (
            {"payment_id": "PAY1", "charge_ids": ["C7"]},
            "C7 is not a charge or installment of account A1",
        ),
    ],
)
def test_apply_refuses_bad_references_with_one_sentence(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        ops.apply_rule(BOOK, RULES, **kwargs)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_void_payment_cannot_be_allocated_or_refunded() -> None:
    book = ledger(charges=[charge("C1", 1000)], payments=[payment("PAY1", 1000, void=True)])
    with pytest.raises(UsageError, match="payment PAY1 is void and cannot be allocated"):
        ops.apply_rule(book, RULES, "due_patient", payment_id="PAY1")
    with pytest.raises(UsageError, match="payment PAY1 is void and cannot be allocated"):
        ops.allocate_manual(book, None, "PAY1", charge_id="C1", amount=100)
    with pytest.raises(UsageError, match="payment PAY1 is void and cannot be refunded"):
        ops.refund(book, None, payment_id="PAY1", amount=100)


def test_a_rule_without_rules_to_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no rule named"):
        ops.apply_rule(BOOK, ruleset(DUE_PATIENT), payment_id="PAY1")


# --- post a payment / a charge ---------------------------------------------------
def test_post_payment_with_no_rule_leaves_it_unallocated() -> None:
    new = payment("PAY9", 5000)
    plan = ops.post_payment(BOOK, None, new)
    assert plan.operation == "post-payment" and plan.splits == ()
    assert plan.payments == (new,) and plan.unallocated == {"PAY9": 5000}
    applied(BOOK, plan)


def test_post_payment_refuses_a_duplicate_or_unknown_patient() -> None:
    with pytest.raises(UsageError, match="there is already a payment PAY1"):
        ops.post_payment(BOOK, None, payment("PAY1", 100))
    with pytest.raises(UsageError, match="there is no patient P9"):
        ops.post_payment(BOOK, None, payment("PAY9", 100, patient="P9"))
    with pytest.raises(UsageError, match="a payment's amount must be above zero"):
        ops.post_payment(BOOK, None, payment("PAY9", 0))


def test_post_charge_runs_on_charge_added_rules_for_the_appointment() -> None:
    book = ledger(
        charges=[charge("C1", 9000, date="2024-12-01")],
        payments=[payment("PAY5", 2000, appointment="AP1"), payment("PAY6", 7000)],
        appointments=[Appointment(id="AP1", patient="P1")],
    )
    rules = ruleset(rule("appointment", source=OneAppointment(), trigger="charge added"))
    new = charge("C9", 5000, appointment="AP1", date="2025-02-25")
    plan = ops.post_charge(book, rules, new)
    assert plan.operation == "post-charge" and plan.charges == (new,)
    assert plan.rule == "appointment"
    assert splits_of(plan) == [("PAY5-1", "PAY5", "C9", 2000)]
    assert plan.unallocated == {"PAY5": 0}
    assert ("C1", "C1 is not a charge of appointment AP1") in [
        (t.target, t.reason) for t in plan.trace
    ]
    after = applied(book, plan)
    assert after.accounts[0].charges[-1].id == "C9"


def test_post_charge_without_rules_only_adds_the_charge() -> None:
    plan = ops.post_charge(BOOK, None, charge("C9", 100))
    assert plan.splits == () and [c.id for c in plan.charges] == ["C9"]
    with pytest.raises(UsageError, match="there is already a charge C1"):
        ops.post_charge(BOOK, None, charge("C1", 100))


def test_payment_and_charge_from_json() -> None:
    new = ops.payment_from_json(
        '{"id": "PAY9", "patient": "P1", "payer": "patient", "amount": 12.5}', BOOK
    )
    assert new.amount == 1250 and new.type == "payment" and new.date == AS_OF
    with pytest.raises(UsageError, match="the payment is not valid: amount"):
        ops.payment_from_json(
            '{"id": "X", "patient": "P1", "payer": "patient", "amount": "1.234"}', BOOK
        )
    with pytest.raises(UsageError, match="the charge is not valid JSON"):
        ops.charge_from_json("{nope", BOOK)


# --- manual allocation -------------------------------------------------------------
def guarded(*guards: Any) -> Any:
    return ruleset(settings_guards=guards)


def test_allocate_by_hand_to_a_charge() -> None:
    plan = ops.allocate_manual(
        BOOK, guarded(OverAllocation(), OverPay()), "PAY1", charge_id="C3", amount="25.00"
    )
    assert plan.operation == "allocate" and plan.rule is None
    assert splits_of(plan) == [("PAY1-1", "PAY1", "C3", 2500)]
    assert plan.transfers[0].id == "T-PAY1-1"
    assert plan.unallocated == {"PAY1": 12500}
    applied(BOOK, plan)


def test_a_manual_split_a_guard_refuses_is_refused_whole() -> None:
    plan = ops.allocate_manual(BOOK, guarded(SameDoctorOnly()), "PAY2", charge_id="C1", amount=1000)
    assert plan.blocked is not None and plan.splits == ()
    assert plan.blocked.reason == "credit of DR2 cannot pay DR1's charge C1"
    assert plan.blocked.clause == "rules/test.rules:60:5"
    assert plan.unallocated == {"PAY2": 4000}


@pytest.mark.parametrize(
    ("mode", "blocked", "warnings"),
    [
        ("block", True, []),
        ("warn", False, ["only 40.00 of PAY2 is available"]),
        (
            "allow",
            False,
            [
                "allocating 50.00 of payment PAY2 leaves -10.00 unallocated: "
                "only 40.00 was available"
            ],
        ),
    ],
)
def test_negative_unallocated_block_warn_allow(
    mode: str, blocked: bool, warnings: list[str]
) -> None:
    plan = ops.allocate_manual(
        BOOK, guarded(OverAllocation(mode)), "PAY2", charge_id="C2", amount=5000
    )
    assert (plan.blocked is not None) == blocked
    assert [w.message for w in plan.warnings] == warnings
    if not blocked:
        assert plan.unallocated == {"PAY2": -1000}
        applied(BOOK, plan)


@pytest.mark.parametrize("mode", ["block", "warn", "allow"])
def test_overpay_charge_block_warn_allow(mode: str) -> None:
    plan = ops.allocate_manual(BOOK, guarded(OverPay(mode)), "PAY1", charge_id="C2", amount=6000)
    assert (plan.blocked is not None) == (mode == "block")
    expected = {
        "block": [],
        "warn": ["C2 allows only 50.00"],
        # allowed, and still never silent: the core states the fact (semantics, Invariants)
        "allow": ["60.00 is more than the 50.00 that C2 still allows"],
    }[mode]
    assert [w.message for w in plan.warnings] == expected


def test_without_rules_an_over_allocation_still_carries_a_warning() -> None:
    plan = ops.allocate_manual(BOOK, None, "PAY2", charge_id="C2", amount=6000)
    assert [w.message for w in plan.warnings] == [
        "allocating 60.00 of payment PAY2 leaves -20.00 unallocated: only 40.00 was available",
        "60.00 is more than the 50.00 that C2 still allows",
    ]
    assert plan.blocked is None


def test_allocate_to_an_installment_splits_across_the_plan_charges() -> None:
    book = ledger(
        charges=[charge("C1", 3000), charge("C2", 4000)],
        payments=[payment("PAY1", 10000)],
        plans=[plan_of("PLAN1", ["C1", "C2"], [("I1", "2025-01-01", 5000)])],
    )
    plan = ops.allocate_manual(book, None, "PAY1", installment_id="I1", amount=5000)
    assert [(s.charge, s.installment, s.amount) for s in plan.splits] == [
        ("C1", "I1", 3000),
        ("C2", "I1", 2000),
    ]
    applied(book, plan)


def test_allocate_to_an_appointment_pays_its_charges_in_ledger_order() -> None:
    book = ledger(
        charges=[
            charge("C1", 3000, appointment="AP1", date="2025-01-09"),
            charge("C2", 4000, appointment="AP2"),
            charge("C3", 2000, appointment="AP1", date="2025-01-01"),
        ],
        payments=[payment("PAY1", 10000)],
        appointments=[Appointment(id="AP1", patient="P1"), Appointment(id="AP2", patient="P1")],
    )
    plan = ops.allocate_manual(book, None, "PAY1", appointment_id="AP1", amount=6000)
    assert splits_of(plan) == [("PAY1-1", "PAY1", "C1", 3000), ("PAY1-2", "PAY1", "C3", 2000)]
    assert plan.unallocated == {"PAY1": 5000}
    assert plan.trace[-1].reason == (
        "10.00 stays unallocated on PAY1 as appointment AP1's unallocated payment"
    )
    applied(book, plan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"charge_id": "C9", "amount": 100}, "C9 is not a charge of account A1"),
        ({"installment_id": "I9", "amount": 100}, "I9 is not an installment of account A1"),
        ({"appointment_id": "AP9", "amount": 100}, "AP9 is not an appointment of account A1"),
        ({"charge_id": "C1", "amount": 0}, "allocate a positive amount, not 0.00"),
        ({"charge_id": "C1", "amount": "1.005"}, "more than two decimal places"),
        ({"amount": 100}, "allocate needs exactly one of"),
    ],
)
def test_allocate_refuses_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ops.allocate_manual(BOOK, None, "PAY1", **kwargs)


# --- refund --------------------------------------------------------------------------
def test_refund_a_payment_inherits_its_fields_and_the_sign_does_not_matter() -> None:
    positive = ops.refund(BOOK, None, payment_id="PAY2", amount="15.00", memo="back")
    negative = ops.refund(BOOK, None, payment_id="PAY2", amount="-15.00", memo="back")
    assert positive == negative
    (made,) = positive.payments
    assert made.model_dump(mode="json", exclude_none=True) == {
        "id": "PAY2-R1",
        "patient": "P1",
        "payer": "patient",
        "provider": "DR2",
        "office": "MAIN",
        "date": "2025-03-01",
        "method": "cash",
        "type": "refund",
        "amount": "-15.00",
        "memo": "back",
        "void": False,
        "refunds": "PAY2",
    }
    assert positive.unallocated == {"PAY2": 2500}
    applied(BOOK, positive)


def test_a_refund_may_not_exceed_the_unallocated_amount() -> None:
    with pytest.raises(UsageError, match=r"a refund of 40\.01 is more than the 40\.00 unallocated"):
        ops.refund(BOOK, None, payment_id="PAY2", amount="40.01")


def test_refunding_a_patients_pool_goes_oldest_first_one_refund_each() -> None:
    plan = ops.refund(
        BOOK,
        None,
        patient_id="P1",
        amount="100.00",
        date=d("2025-03-05"),
        provider="DR1",
        method="cheque",
    )
    assert [(p.id, p.refunds, p.amount, p.provider, p.method) for p in plan.payments] == [
        ("PAY2-R1", "PAY2", -4000, "DR1", "cheque"),
        ("PAY1-R1", "PAY1", -6000, "DR1", "cheque"),
    ]
    assert plan.unallocated == {"PAY1": 9000, "PAY2": 0}
    after = applied(BOOK, plan)
    again = ops.refund(after, None, payment_id="PAY1", amount=100)
    assert again.payments[0].id == "PAY1-R2"
    with pytest.raises(UsageError, match="of unallocated credit patient P1 has"):
        ops.refund(BOOK, None, patient_id="P1", amount="190.01")


# --- unallocate, void ------------------------------------------------------------------
SPLIT_BOOK = ledger(
    charges=[charge("C1", 10000)],
    payments=[payment("PAY1", 10000)],
    splits=[split("PAY1-1", "PAY1", "C1", 6000)],
)


def test_unallocate_part_then_the_rest_of_a_split() -> None:
    plan = ops.unallocate(SPLIT_BOOK, "PAY1-1", "20.00")
    (reversal,) = plan.splits
    assert reversal.model_dump(mode="json") == {
        "id": "PAY1-2",
        "payment": "PAY1",
        "charge": "C1",
        "installment": None,
        "amount": "-20.00",
        "transfer": None,
        "reverses": "PAY1-1",
    }
    assert plan.unallocated == {"PAY1": 6000}
    after = applied(SPLIT_BOOK, plan)
    rest = ops.unallocate(after, "PAY1-1")
    assert [(s.id, s.amount) for s in rest.splits] == [("PAY1-3", -4000)]
    final = applied(after, rest)
    with pytest.raises(UsageError, match="split PAY1-1 is already reversed in full"):
        ops.unallocate(final, "PAY1-1")
    with pytest.raises(UsageError, match="split PAY1-2 is itself a reversal"):
        ops.unallocate(final, "PAY1-2")


def test_unallocate_refuses_more_than_is_left_and_unknown_splits() -> None:
    with pytest.raises(UsageError, match=r"has 60\.00 left to reverse, not 60\.01"):
        ops.unallocate(SPLIT_BOOK, "PAY1-1", "60.01")
    with pytest.raises(UsageError, match="there is no split S9"):
        ops.unallocate(SPLIT_BOOK, "S9")


def test_void_marks_the_payment_and_its_splits_stop_counting() -> None:
    plan = ops.void(SPLIT_BOOK, "PAY1", "entered against the wrong doctor")
    assert [v.model_dump() for v in plan.voids] == [
        {"payment": "PAY1", "reason": "entered against the wrong doctor"}
    ]
    after = applied(SPLIT_BOOK, plan)
    voided = after.accounts[0].payments[0]
    assert voided.void and voided.memo == "void: entered against the wrong doctor"
    assert len(after.accounts[0].splits) == 1
    assert figures_of(after).balance(after.accounts[0].charges[0]) == 10000
    with pytest.raises(UsageError, match="payment PAY1 is already void"):
        ops.void(after, "PAY1")


def test_voiding_a_refund_gives_the_money_back_to_its_payment() -> None:
    refunded = applied(BOOK, ops.refund(BOOK, None, payment_id="PAY2", amount=1000))
    plan = ops.void(refunded, "PAY2-R1")
    assert plan.unallocated == {"PAY2": 4000, "PAY2-R1": 0}


# --- history ---------------------------------------------------------------------------
def test_history_entry_records_the_plan_with_a_reproducible_time() -> None:
    plan = ops.refund(BOOK, RULES, payment_id="PAY2", amount=1000)
    entry = history_entry(plan, RULES, environ={"PAYSPLIT_NOW": "2025-03-01T09:00:00"})
    assert entry.model_dump(mode="json", exclude_none=True) == {
        "operation": "refund",
        "rules_digest": "sha256:test",
        "plugins": {"test": "1.0"},
        "applied_at": "2025-03-01T09:00:00",
        "splits": [],
        "payments": ["PAY2-R1"],
        "voids": [],
        "charges": [],
        "credits": [],
    }
    after = record_history(apply_plan(BOOK, plan), entry)
    assert after.history == (entry,)
    assert history_entry(plan, None, environ={}).applied_at[:2] == "20"


def test_apply_plan_keeps_order_and_is_pure() -> None:
    plan = ops.apply_rule(BOOK, RULES, "due_patient", payment_id="PAY1")
    before = BOOK.model_dump(mode="json")
    after = apply_plan(BOOK, plan)
    assert BOOK.model_dump(mode="json") == before
    assert [p.id for p in after.accounts[0].payments] == ["PAY1", "PAY2"]
    with pytest.raises(UsageError, match="split PAY1-1 is already in the ledger"):
        apply_plan(after, plan)


# --- with the built-in policies (their classes, wired by hand) ---------------------------
def test_seed_003_cross_doctor_manual_allocation_is_refused_naming_both_providers() -> None:
    from paysplit.plugins.cross_doctor import NoCrossDoctor

    plan = ops.allocate_manual(
        BOOK, guarded(NoCrossDoctor()), "PAY2", charge_id="C1", amount="20.00"
    )
    assert plan.blocked is not None
    assert "DR2" in plan.blocked.reason and "DR1" in plan.blocked.reason
    assert plan.splits == ()


def test_seed_003_a_dr2_payment_pays_only_dr2_under_no_cross_doctor() -> None:
    from paysplit.plugins.cross_doctor import NoCrossDoctor

    book = ledger(
        charges=[
            charge("C1", 3000, provider="DR1", date="2025-01-01"),
            charge("C2", 2000, provider="DR2", date="2025-01-02"),
        ],
        payments=[payment("PAY2", 4000, provider="DR2")],
    )
    rules = ruleset(
        rule("oasis", orders=[OLDEST], scopes=[WholeAccount()]), settings_guards=(NoCrossDoctor(),)
    )
    plan = ops.apply_rule(book, rules, "oasis", payment_id="PAY2")
    assert splits_of(plan) == [("PAY2-1", "PAY2", "C2", 2000)]
    assert plan.unallocated == {"PAY2": 2000}
    skipped = [t for t in plan.trace if t.target == "C1"]
    assert (
        len(skipped) == 1 and not skipped[0].used and skipped[0].clause == "rules/test.rules:60:5"
    )
    applied(book, plan)


def test_seed_001_negative_unallocated_plugin_in_block_and_warn_modes() -> None:
    from paysplit.plugins.negative_unallocated import NegativeUnallocated

    blocked = ops.allocate_manual(
        BOOK, guarded(NegativeUnallocated("block")), "PAY2", charge_id="C1", amount="50.00"
    )
    assert blocked.blocked is not None and "negative unallocated block" in blocked.blocked.reason
    warned = ops.allocate_manual(
        BOOK, guarded(NegativeUnallocated("warn")), "PAY2", charge_id="C1", amount="50.00"
    )
    assert warned.blocked is None and len(warned.warnings) == 1
    assert warned.unallocated == {"PAY2": -1000}


def test_seed_002_unattached_adjustments_block_allocate_unearned() -> None:
    from paysplit.plugins.unattached_adjustments import BlockOnUnattachedAdjustments

    book = BOOK.model_copy(
        update={
            "accounts": (
                BOOK.accounts[0].model_copy(
                    update={"adjustments": (Adjustment(id="ADJ1", patient="P1", amount="-20"),)}
                ),
            )
        }
    )
    rules = ruleset(
        rule(
            "unearned",
            source=POOL,
            scopes=[WholeAccount()],
            guards=[BlockOnUnattachedAdjustments()],
        )
    )
    plan = ops.apply_rule(book, rules, "unearned", account_id="A1", charge_ids=["C1"])
    assert plan.blocked is not None and plan.splits == ()
    assert "unattached negative adjustments" in plan.blocked.reason
    assert plan.blocked.clause == "rules/test.rules:30:5"


def test_seed_000_appointment_credit_posts_itself_when_the_charge_arrives() -> None:
    from paysplit.plugins.appointment_credit import AppointmentCredit

    book = ledger(
        payments=[payment("PAY5", 2000, appointment="AP1"), payment("PAY6", 5000)],
        appointments=[Appointment(id="AP1", patient="P1")],
    )
    rules = ruleset(rule("appointment_credit", source=AppointmentCredit(), trigger="charge added"))
    plan = ops.post_charge(book, rules, charge("C9", 10000, appointment="AP1"))
    assert splits_of(plan) == [("PAY5-1", "PAY5", "C9", 2000)]
    assert plan.unallocated == {"PAY5": 0}
    applied(book, plan)


def test_seed_004_leftover_credit_due_to_insurance() -> None:
    from paysplit.plugins.credit_due_to import CreditDueTo

    rules = ruleset(rule("due_insurance", orders=[OLDEST], leftover=CreditDueTo("insurance")))
    new = payment("INS9", 25000, payer="insurance", provider="DR1")
    plan = ops.post_payment(BOOK, rules, new, "due_insurance")
    assert [(c.payment, c.amount, c.due_to, c.provider, c.office) for c in plan.credits] == [
        ("INS9", 2500, "insurance", "DR1", "MAIN")
    ]
    after = applied(BOOK, plan)
    assert figures_of(after).credit_due_to_patient(after.accounts[0].payments[-1]) == 0
