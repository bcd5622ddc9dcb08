"""The generated charge predicate of a ``where`` keeps exactly what its charge form keeps.

``paysplit.charge_predicates`` turns a condition into one Python function for the batch's
run without the trace; the charge form (closures, with reasons) is the reference. Every
comparison the language has over a charge's own fields is drawn here, with missing
values, negations and ``and``/``or`` nesting.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_expressions import where
from test_properties import profile
from test_rule_kernel import conditions

from paysplit.charge_predicates import predicate_of
from paysplit.ledger import Charge

LEAVES = (
    "status in (due_patient, pending_patient)",
    "status not in (collection, due_insurance)",
    "status = due_patient",
    "status != pending_payer",
    "kind in (procedure, debit)",
    "kind != adjustment",
    "provider = DR1",
    "provider != DR2",
    "office in (MAIN, EAST)",
    "office = MAIN",
    "office != EAST",
    "appointment = AP1",
    'code != "D1110"',
    'code in ("D1110", "D0120")',
    "amount >= 100",
    "amount < 5.99",
    "amount = 50",
    "insurance_estimate > 0",
    "insurance_estimate <= 20",
    "date > 2024-06-01",
    "date <= 2025-01-15",
    "date = 2025-01-02",
    "amount > charge.insurance_estimate",
    "insurance_estimate >= charge.amount",
    "id in (C1, C2)",
)


def _maybe(*values: str) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(values))


@st.composite
def charges(draw: st.DrawFn) -> Charge:
    fields: dict[str, Any] = {
        "id": draw(st.sampled_from(["C1", "C2", "C3"])),
        "patient": draw(st.sampled_from(["P1", "DR1"])),
        "provider": draw(st.sampled_from(["DR1", "DR2", "DR3"])),
        "office": draw(_maybe("MAIN", "EAST", "WEST")),
        "appointment": draw(_maybe("AP1", "AP2")),
        "code": draw(_maybe("D1110", "D0120", "D2740")),
        "kind": draw(st.sampled_from(["procedure", "debit", "adjustment"])),
        "status": draw(
            st.sampled_from(
                ["due_patient", "pending_patient", "due_insurance", "pending_payer", "collection"]
            )
        ),
        "date": draw(st.dates(dt.date(2024, 5, 30), dt.date(2025, 1, 17))),
        "amount": draw(st.sampled_from([0, 1, 599, 600, 5_000, 9_999, 10_000, 12_000])),
        "insurance_estimate": draw(st.sampled_from([0, 1, 2_000, 2_001, 12_000])),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    for money in ("amount", "insurance_estimate"):
        whole, cents = divmod(fields[money], 100)
        fields[money] = f"{whole}.{cents:02d}"
    fields["date"] = fields["date"].isoformat()
    return Charge(**fields)


@given(conditions(LEAVES, depth=3), st.lists(charges(), min_size=1, max_size=8))
@profile(0.5)
def test_the_predicate_keeps_what_the_charge_form_keeps(text: str, drawn: list[Charge]) -> None:
    compiled = where(text)
    form = compiled.charge_form()
    keeps = compiled.charge_predicate()
    assert form is not None and keeps is not None
    for charge in drawn:
        kept = keeps(charge)
        assert type(kept) is bool
        assert kept == (form(charge) is None), (text, charge, form(charge))


def test_a_condition_on_more_than_the_charge_has_no_predicate() -> None:
    assert where("balance > 10").charge_predicate() is None
    assert where("payment.payer = patient").charge_predicate() is None


def test_a_rule_files_text_is_passed_as_a_value_never_run_as_code() -> None:
    text = "x) or __import__('os').getcwd() or (1"
    compiled = where(f'code = "{text}" or code in ("{text}", D1110)')
    keeps = compiled.charge_predicate()
    assert keeps is not None
    names = keeps.__code__.co_names
    assert "__import__" not in names and "getcwd" not in names
    assert text not in keeps.__code__.co_consts
    matching = {"id": "C1", "patient": "P1", "provider": "DR1", "date": "2025-01-02"}
    assert keeps(Charge(**matching, amount="1.00", status="due_patient", code=text)) is True
    assert keeps(Charge(**matching, amount="1.00", status="due_patient", code="D0120")) is False


def test_a_field_outside_the_charge_is_refused_when_the_source_is_made() -> None:
    from paysplit.expressions import Leaf

    odd = Leaf("__class__", "code", "=", False, ("x",), None, "__class__ = x")
    try:
        predicate_of(odd)
    except ValueError as error:
        assert "not a charge field: '__class__'" in str(error)
    else:  # pragma: no cover - the test fails here
        raise AssertionError("a field that is not a charge's was accepted")
