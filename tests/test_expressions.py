"""``where`` expressions: type checking against fields and vocabulary, closures, reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from _language_plugins import stock_set

from paysplit.expressions import (
    PAYMENT_FIELDS,
    TARGET_FIELDS,
    AllOf,
    AnyOf,
    Leaf,
    WhereFilter,
    compile_where,
    order_field,
)
from paysplit.ledger import Charge, Installment, Payment, PaymentPlan
from paysplit.parser import parse_clauses
from paysplit.policy import Target
from paysplit.resolver import vocabulary_check
from paysplit.syntax import Operand, Span, WhereClause

CHECK = vocabulary_check(stock_set())


def charge(**fields: Any) -> Charge:
    values: dict[str, Any] = {
        "id": "C1",
        "patient": "P1",
        "provider": "DR1",
        "date": "2025-01-02",
        "amount": "100.00",
        "status": "due_patient",
    }
    values.update(fields)
    return Charge(**values)


def target(
    balance: int = 10_000, patient_balance: int = 10_000, age: int = 30, **fields: Any
) -> Target:
    return Target(charge(**fields), None, None, balance, patient_balance, patient_balance, age, 0)


def payment(**fields: Any) -> Payment:
    values: dict[str, Any] = {
        "id": "PAY1",
        "patient": "P1",
        "payer": "patient",
        "provider": "DR1",
        "date": "2025-03-01",
        "type": "payment",
        "amount": "50.00",
    }
    values.update(fields)
    return Payment(**values)


def where(text: str, default_type: str | None = None) -> WhereFilter:
    (clause,) = parse_clauses(f"where {text}")
    assert isinstance(clause, WhereClause)
    compiled, problems = compile_where(clause.expr, CHECK, default_type)
    assert problems == [], problems
    assert compiled is not None
    return compiled


def problems(text: str) -> list[tuple[str, str, int]]:
    (clause,) = parse_clauses(f"where {text}")
    assert isinstance(clause, WhereClause)
    compiled, found = compile_where(clause.expr, CHECK)
    assert compiled is None
    return [(p.message, p.hint, p.span.column) for p in found]


# --- reasons ------------------------------------------------------------------------
def test_the_reasons_a_target_is_skipped() -> None:
    due_insurance = target(status="due_insurance")
    assert (
        where("status in (due_patient, pending_patient)").skip_reason(due_insurance, None)
        == "status due_insurance is not due_patient or pending_patient"
    )
    assert (
        where("patient_balance > 0").skip_reason(target(patient_balance=0), None)
        == "patient_balance 0.00 is not more than 0.00"
    )
    assert where("status = due_patient").skip_reason(due_insurance, None) == (
        "status due_insurance is not due_patient"
    )
    assert where("status != due_insurance").skip_reason(due_insurance, None) == (
        "status is due_insurance"
    )
    assert where("status not in (collection, due_insurance)").skip_reason(due_insurance, None) == (
        "status is due_insurance"
    )
    assert where("balance <= $12.50").skip_reason(target(balance=1251), None) == (
        "balance 12.51 is more than 12.50"
    )
    assert where("balance >= 12").skip_reason(target(balance=1199), None) == (
        "balance 11.99 is less than 12.00"
    )
    assert where("age < 90 days").skip_reason(target(age=90), None) == (
        "age 90 days is not less than 90 days"
    )
    assert where("date < 2025-01-01").skip_reason(target(), None) == (
        "date 2025-01-02 is not before 2025-01-01"
    )
    assert where("not date > 2025-01-01").skip_reason(target(), None) == (
        "date 2025-01-02 is after 2025-01-01"
    )


def test_and_gives_the_first_failing_reason_and_or_gives_all() -> None:
    test = where("status = collection or balance > 500")
    assert test.skip_reason(target(), None) == (
        "status due_patient is not collection and balance 100.00 is not more than 500.00"
    )
    both = where("status = due_patient and balance > 500 and kind = procedure")
    assert both.skip_reason(target(), None) == "balance 100.00 is not more than 500.00"
    assert both.skip_reason(target(balance=50_001), None) is None


def test_negation_is_pushed_down_de_morgan_style() -> None:
    test = where("not (status = due_patient or balance > 500)")
    assert isinstance(test.condition, AllOf)
    assert [leaf.negated for leaf in test.condition.items if isinstance(leaf, Leaf)] == [
        True,
        True,
    ]
    assert test.skip_reason(target(), None) == "status is due_patient"
    assert test.skip_reason(target(status="collection"), None) is None
    double = where("not not status = due_patient")
    assert isinstance(double.condition, Leaf) and not double.condition.negated
    either = where("not (status = a_never and balance > 1)".replace("a_never", "collection"))
    assert isinstance(either.condition, AnyOf)


def test_payment_fields_and_field_to_field_comparisons() -> None:
    by_insurance = payment(payer="insurance")
    test = where("payment.payer = patient")
    assert test.skip_reason(target(), payment()) is None
    assert test.skip_reason(target(), by_insurance) == "payment.payer insurance is not patient"
    assert test.skip_reason(target(), None) == "payment.payer (none) is not patient"
    same = where("provider = payment.provider")
    assert same.skip_reason(target(), payment()) is None
    assert same.skip_reason(target(provider="DR2"), payment()) == (
        "provider DR2 is not payment.provider DR1"
    )
    assert same.skip_reason(target(), payment(provider=None)) == (
        "provider DR1 is not payment.provider (none)"
    )
    covered = where("payment.amount >= charge.balance")
    assert covered.skip_reason(target(balance=4_000), payment()) is None
    assert covered.skip_reason(target(), payment()) == (
        "payment.amount 50.00 is less than balance 100.00"
    )


def test_a_missing_value_never_equals_anything() -> None:
    assert where("office = MAIN").skip_reason(target(), None) == "office (none) is not MAIN"
    assert where("office != MAIN").skip_reason(target(), None) is None
    assert where("office = payment.office").skip_reason(target(), payment()) == (
        "office (none) is not payment.office (none)"
    )


def test_the_unearned_type_of_a_payment_that_names_none_is_the_default() -> None:
    test = where("payment.unearned_type = copay", default_type="copay")
    assert test.skip_reason(target(), payment()) is None
    assert where("payment.unearned_type = prepayment").skip_reason(target(), payment()) is None
    assert where("payment.unearned_type = copay").skip_reason(target(), payment()) == (
        "payment.unearned_type prepayment is not copay"
    )


def test_installments_use_their_own_date_and_amount() -> None:
    plan = PaymentPlan(id="PL1", patient="P1", charges=("C1",))
    installment = Installment(id="I1", due="2025-06-01", amount="25.00")
    item = Target(charge(), installment, plan, 2_500, 2_500, 2_500, 0, 0)
    assert where("id = I1 and amount = 25 and date = 2025-06-01").skip_reason(item, None) is None


def test_every_field_of_the_table_is_readable() -> None:
    item = target(code="D1110", office="MAIN", appointment="AP1", insurance_estimate="10.00")
    pay = payment(method="card", unearned_type="copay", office="MAIN")
    values = {
        name: field.get(item, pay) for name, field in {**TARGET_FIELDS, **PAYMENT_FIELDS}.items()
    }
    assert values["code"] == "D1110" and values["insurance_estimate"] == 1_000
    assert values["date"] == dt.date(2025, 1, 2) and values["age"] == 30
    assert values["payment.method"] == "card" and values["payment.patient"] == "P1"


# --- type checking ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message", "hint", "column"),
    [
        (
            "patient_balanse > 0",
            'unknown field "patient_balanse"',
            "did you mean patient_balance?",
            7,
        ),
        (
            "payment.payr = patient",
            'unknown field "payment.payr"',
            "did you mean payment.payer?",
            7,
        ),
        ("balance > 2025-01-01", "balance is an amount: expected an amount such as 12.50", "", 17),
        ("date < 12", "date is a date: expected a date such as 2025-01-22", "", 14),
        ("age > 90", "age is a number of days", "write 90 days", 13),
        ("status = due_patent", 'unknown status "due_patent"', "did you mean due_patient?", 16),
        ("kind in (procedure, debt)", 'unknown charge kind "debt"', "did you mean debit?", 27),
        ("payment.unearned_type = prepaid", 'unknown unearned type "prepaid"', "", 31),
        ("payment.payer = patent", 'unknown payer "patent"', "did you mean patient?", 23),
        ("status > due_patient", "status has no order", "", 7),
        ("balance > patient_balance", "balance is an amount", "charge.patient_balance", 17),
        ("provider = payment.office", "provider (provider id) cannot be compared with", "", 7),
        ("5 < balance", 'a condition starts with a field, not "5"', "", 7),
        ("other.thing = 1", 'unknown field "other.thing"', "", 7),
        ("status in (due_patient, payment.payer)", "a list holds values", "", 31),
        ("balance > 1.234", "more than two decimal places", "", 17),
        ("date = 2025-02-30", "2025-02-30 is not a date", "", 14),
    ],
)
def test_type_errors_point_at_the_mistake(text: str, message: str, hint: str, column: int) -> None:
    ((found_message, found_hint, found_column),) = problems(text)
    assert message in found_message
    assert hint in found_hint
    assert found_column == column


def test_every_mistake_in_an_expression_is_reported() -> None:
    found = problems("status = due_patent and balanse > 0 or age > 2025-01-01")
    assert [column for _, _, column in found] == [16, 31, 52]


def test_a_status_from_a_disabled_plugin_names_it() -> None:
    only_disabled = stock_set(disabled=("test.vocabulary",))
    check = vocabulary_check(only_disabled)
    assert check("statuses", "collection") == (
        'status "collection" comes from plugin test.vocabulary, which is disabled',
        "enable the plugin, or remove it from the rule",
    )


def test_order_fields() -> None:
    span = Span(1, 1, 1, 2)
    found, problem = order_field(Operand("qualified", "charge.date", "charge.date", span))
    assert found is TARGET_FIELDS["date"] and problem is None
    found, problem = order_field(Operand("qualified", "payment.amount", "payment.amount", span))
    assert found is None and problem is not None and "same payment" in problem.message
    found, problem = order_field(Operand("word", "balanse", "balanse", span))
    assert found is None and problem is not None and problem.hint == "did you mean balance?"
