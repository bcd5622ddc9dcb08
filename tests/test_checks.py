"""Static warnings: rules that select nothing, repeated and redundant clauses."""

from __future__ import annotations

import pytest
from _language_plugins import stock_set

from paysplit.compiler import compile_source
from paysplit.errors import Diagnostic

PLUGINS = stock_set()


def diagnostics(text: str) -> list[Diagnostic]:
    ruleset, found = compile_source(text, "t.rules", PLUGINS)
    assert ruleset is not None, [d.render() for d in found]
    assert all(d.severity == "warning" for d in found)
    return found


def warnings(text: str) -> list[str]:
    return [d.message for d in diagnostics(text)]


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        (
            "status = collection and status = due_patient",
            "status = collection and status = due_patient",
        ),
        ("status in (collection, due_patient) and status not in (due_patient, collection)", ""),
        ("status = collection and not status = collection", "not (status = collection)"),
        ("balance > 10 and balance < 5", "balance > 10 and balance < 5"),
        ("balance > 5.99 and balance < 6", ""),
        ("balance >= 6 and balance <= 5.99", ""),
        ("balance = 5 and balance != 5", ""),
        ("balance = 5 and balance > 5", ""),
        ("patient_balance < 0", "patient_balance < 0"),
        ("age < 10 days and age > 20 days", ""),
        ("date > 2025-01-22 and date < 2025-01-23", ""),
        ("(status = collection or status = due_insurance) and status = due_patient", ""),
        ("payment.payer = patient and payment.payer = insurance", ""),
        ("kind = procedure and not (kind != adjustment)", ""),
        ("not (balance >= 0 or balance < 0)", ""),
    ],
)
def test_a_rule_that_can_never_select_anything(condition: str, why: str) -> None:
    (found,) = diagnostics(f"rule r: oldest first where {condition}\n")
    assert found.message.startswith('rule "r" can never select anything: ')
    assert why in found.message
    assert (found.line, found.column) == (1, 22)


@pytest.mark.parametrize(
    "condition",
    [
        "status = collection or status = due_patient",
        "balance > 5 and balance < 5.02",
        "balance > 10 and patient_balance < 5",
        "provider = payment.provider and provider = DR1",
        "not (balance > 5) and balance < 10",
        "status != collection and status != due_patient",
        "date >= 2025-01-22 and date <= 2025-01-22",
        "balance >= 0 or balance < 0",
        "patient_balance = 0",
    ],
)
def test_a_rule_that_can_select_something_gets_no_warning(condition: str) -> None:
    assert warnings(f"rule r: where {condition}\n") == []


def test_several_where_clauses_and_modes_are_taken_together() -> None:
    (message,) = warnings("rule r:\n    mode due patient\n    where status = collection\n")
    assert "status in (due_patient, pending_patient) and status = collection" in message
    (message,) = warnings("rule r: where balance > 5, where balance < 5\n")
    assert "can never select anything" in message


def test_too_many_alternatives_are_not_analysed() -> None:
    either = " and ".join(["(status = collection or status = due_patient)"] * 8)
    assert warnings(f"rule r: where {either} and status = pending_patient\n") == []


def test_a_repeated_clause() -> None:
    found = diagnostics(
        "settings:\n    no cross-doctor\n    no cross-doctor\n"
        "rule r:\n    oldest first\n    include account\n    oldest first\n"
        "    no cross-doctor\n"
        "rule s: mode due patient, oldest first\n"
    )
    assert [(d.line, d.column, d.message) for d in found] == [
        (3, 5, 'clause "no cross-doctor" is repeated: in the settings, line 2 already has it'),
        (7, 5, 'clause "oldest first" is repeated: line 5 already has it'),
        (8, 5, 'clause "no cross-doctor" is repeated: in the settings, line 2 already has it'),
        (9, 27, 'clause "oldest first" is repeated: mode "due patient" on line 9 already has it'),
    ]


def test_a_clause_another_one_makes_redundant() -> None:
    in_rule = diagnostics("rule r: match provider, no cross-doctor\n")
    assert [(d.column, d.message) for d in in_rule] == [
        (9, 'clause "match provider" adds nothing: "no cross-doctor" (line 1) makes it redundant')
    ]
    from_settings = warnings("settings:\n    no cross-doctor\nrule r:\n    match provider\n")
    assert from_settings == [
        'clause "match provider" adds nothing: "no cross-doctor" '
        "(in the settings, line 2) makes it redundant"
    ]
    assert warnings("rule r: match office, no cross-doctor\n") == []


def test_the_stock_card_example_warns_about_its_redundant_match() -> None:
    found = warnings(
        "rule card: oldest first where status=due_patient, match provider, no cross-doctor\n"
    )
    assert found == [
        'clause "match provider" adds nothing: "no cross-doctor" (line 1) makes it redundant'
    ]


def test_a_default_rule_that_does_not_exist_is_an_error() -> None:
    ruleset, found = compile_source(
        "settings:\n    default rule pay_oldset\nrule pay_oldest: oldest first\n",
        "t.rules",
        PLUGINS,
    )
    assert ruleset is None
    (error,) = found
    assert error.severity == "error" and (error.line, error.column) == (2, 18)
    assert error.hint == "did you mean pay_oldest?"
