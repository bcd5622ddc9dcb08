"""The plan model: its JSON is exactly the shape ``--json`` prints (docs/cli.md)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from paysplit.plans import (
    BlockedReason,
    Plan,
    PlannedCredit,
    PlannedSplit,
    PlanWarning,
    TraceEntry,
    Transfer,
    TransferLeg,
)


def sample() -> Plan:
    return Plan(
        operation="apply",
        rule="due_patient",
        splits=(
            PlannedSplit(
                id="PAY9-1",
                payment="PAY9",
                charge="C1",
                amount=10000,
                transfer="T-PAY9-1",
                rule="due_patient",
            ),
        ),
        credits=(
            PlannedCredit(
                payment="PAY9",
                amount=5000,
                due_to="patient",
                memo="Account credit",
                provider="DR1",
                office="MAIN",
            ),
        ),
        unallocated={"PAY9": 5000},
        warnings=(PlanWarning(message="look", clause=None),),
        trace=(
            TraceEntry(
                target="C2",
                used=False,
                amount=0,
                reason="status due_insurance not in (due_patient, pending_patient)",
                clause="rules/smile.rules:8:17",
            ),
            TraceEntry(source="PAY9", target="C1", used=True, amount=10000, reason="paid"),
        ),
        transfers=(
            Transfer(
                id="T-PAY9-1",
                from_payment="PAY9",
                unearned_type="prepayment",
                legs=(
                    TransferLeg(target=None, amount=-10000),
                    TransferLeg(target="C1", amount=10000),
                ),
            ),
        ),
        date=dt.date(2025, 3, 1),
    )


def test_the_json_has_the_documented_keys_in_order_and_amounts_as_strings() -> None:
    document = sample().to_json()
    assert list(document) == [
        "operation",
        "rule",
        "preview",
        "blocked",
        "splits",
        "credits",
        "payments",
        "voids",
        "unallocated",
        "warnings",
        "trace",
        "transfers",
        "charges",
        "date",
    ]
    assert document["splits"] == [
        {
            "id": "PAY9-1",
            "payment": "PAY9",
            "charge": "C1",
            "installment": None,
            "amount": "100.00",
            "transfer": "T-PAY9-1",
        }
    ]
    assert document["credits"][0]["amount"] == "50.00"
    assert document["unallocated"] == {"PAY9": "50.00"}
    assert document["warnings"] == [{"message": "look", "clause": None}]
    assert document["trace"][0] == {
        "target": "C2",
        "used": False,
        "amount": "0.00",
        "reason": "status due_insurance not in (due_patient, pending_patient)",
        "clause": "rules/smile.rules:8:17",
    }
    assert document["trace"][1]["source"] == "PAY9"
    assert document["transfers"][0]["legs"] == [
        {"target": None, "amount": "-100.00"},
        {"target": "C1", "amount": "100.00"},
    ]
    assert document["blocked"] is None and document["date"] == "2025-03-01"


def test_a_reversal_shows_what_it_reverses() -> None:
    reversal = PlannedSplit(id="P-2", payment="P", charge="C1", amount=-2000, reverses="P-1")
    assert reversal.model_dump(mode="json")["reverses"] == "P-1"
    assert reversal.model_dump(mode="json")["amount"] == "-20.00"


def test_blocked_carries_reason_clause_and_plugin() -> None:
    plan = Plan(
        operation="apply",
        blocked=BlockedReason(reason="no", clause="r.rules:3:5", plugin="paysplit.x"),
        date=dt.date(2025, 3, 1),
    )
    assert plan.to_json()["blocked"] == {
        "reason": "no",
        "clause": "r.rules:3:5",
        "plugin": "paysplit.x",
    }
    assert plan.is_blocked and plan.is_empty


def test_a_plan_reads_back_from_its_json() -> None:
    plan = sample()
    again = Plan.model_validate(json.loads(plan.dumps()))
    assert again.dumps() == plan.dumps()
    assert again.splits[0].amount == 10000
    assert again.unallocated_of("PAY9") == 5000


def test_plans_are_frozen_and_strict() -> None:
    plan = sample()
    with pytest.raises(ValidationError):
        plan.operation = "void"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        PlanWarning(message="x", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PlannedSplit(id="a", payment="b", charge=None, amount=1.5)


def test_an_int_amount_is_cents_and_text_is_exact() -> None:
    assert TransferLeg(target=None, amount=1).model_dump(mode="json")["amount"] == "0.01"
    assert TransferLeg(target=None, amount="12.30").amount == 1230
    with pytest.raises(ValidationError, match="more than two decimal places"):
        TransferLeg(target=None, amount="1.234")


def test_the_same_plan_dumps_to_the_same_bytes() -> None:
    assert sample().dumps() == sample().dumps()
    assert not sample().is_empty
