"""The invariants a ledger shows by itself (``paysplit validate`` exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paysplit.cli import main
from paysplit.errors import Problem
from paysplit.figures import AccountFigures
from paysplit.invariants import check_invariants
from paysplit.ledger import Ledger
from paysplit.ledger_io import dump_ledger, ledger_from_document, load_ledger

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ledgers"


def payment(pid: str, amount: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "patient": "P1", "payer": "patient", "date": "2025-02-01",
            "type": "payment", "amount": amount, **fields}  # fmt: skip


def refund(rid: str, amount: str, refunds: str, **fields: Any) -> dict[str, Any]:
    return payment(rid, amount, type="refund", refunds=refunds, **fields)


def split(
    sid: str, pay: str, amount: str, charge: str | None = "C1", **fields: Any
) -> dict[str, Any]:
    return {"id": sid, "payment": pay, "charge": charge, "amount": amount, **fields}  # fmt: skip


def ledger(
    payments: list[dict[str, Any]],
    splits: list[dict[str, Any]],
    *,
    installments: tuple[str, ...] = ("50.00",),
) -> Ledger:
    """One account: charges C1 100.00 and C2 40.00, plan PLAN1 on C1."""
    doc = {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Smile Dental", "currency": "USD"},
        "providers": [{"id": "DR1"}],
        "accounts": [
            {
                "id": "A1",
                "patients": [{"id": "P1"}],
                "charges": [
                    {"id": "C1", "patient": "P1", "provider": "DR1", "date": "2025-01-01",
                     "amount": "100.00", "status": "due_patient"},
                    {"id": "C2", "patient": "P1", "provider": "DR1", "date": "2025-01-02",
                     "amount": "40.00", "status": "due_patient"},
                ],
                "payments": payments,
                "plans": [{"id": "PLAN1", "patient": "P1", "charges": ["C1"],
                           "installments": [{"id": f"I{n + 1}", "due": "2025-02-01", "amount": a}
                                            for n, a in enumerate(installments)]}],
                "splits": splits,
            }
        ],
    }  # fmt: skip
    return ledger_from_document(doc, "test")


def found(book: Ledger, **settings: bool) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in check_invariants(book, **settings)]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_ledger_keeps_every_invariant(name: str) -> None:
    assert check_invariants(load_ledger(EXAMPLES / name)) == []


def test_a_sound_ledger_with_a_reversal_and_a_refund() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), refund("RF1", "-30.00", "PAY1")],
        [split("S1", "PAY1", "60.00"), split("S2", "PAY1", "-20.00", reverses="S1")],
    )
    assert check_invariants(book) == []
    figures = AccountFigures.of(book.accounts[0])
    pay1 = figures.payments["PAY1"]
    assert (figures.allocated(pay1), figures.refunded(pay1), figures.unallocated(pay1)) == (
        4000,
        3000,
        3000,
    )


def test_a_zero_split() -> None:
    book = ledger([payment("PAY1", "100.00")], [split("S1", "PAY1", "0.00")])
    assert found(book) == [
        ("accounts[0].splits[0].amount", "split S1 moves 0.00; a split moves money")
    ]


def test_a_negative_split_that_reverses_nothing() -> None:
    book = ledger([payment("PAY1", "100.00")], [split("S1", "PAY1", "-5.00")])
    assert found(book) == [
        (
            "accounts[0].splits[0].amount",
            "split S1 is negative (-5.00) but reverses no split; only a reversal (unallocate, "
            "void) is negative",
        )
    ]


def test_a_reversal_of_a_later_split() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [split("S2", "PAY1", "-5.00", reverses="S1"), split("S1", "PAY1", "10.00")],
    )
    assert found(book) == [
        (
            "accounts[0].splits[0].reverses",
            "split S2 reverses S1, which does not come before it in the ledger",
        )
    ]


def test_a_reversal_of_a_reversal() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [
            split("S1", "PAY1", "10.00"),
            split("S2", "PAY1", "-5.00", reverses="S1"),
            split("S3", "PAY1", "-1.00", reverses="S2"),
        ],
    )
    assert found(book) == [
        ("accounts[0].splits[2].reverses", "split S3 reverses S2, which is itself a reversal")
    ]


def test_a_reversal_must_return_money_to_its_own_payment() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), payment("PAY2", "100.00")],
        [split("S1", "PAY1", "10.00"), split("S2", "PAY2", "-5.00", reverses="S1")],
    )
    assert found(book) == [
        (
            "accounts[0].splits[1].payment",
            "split S2 reverses S1 of payment PAY1 but names payment PAY2; the money returns to "
            "the payment it came from",
        )
    ]


def test_a_reversal_must_name_the_same_target() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [
            split("S1", "PAY1", "10.00", installment="I1"),
            split("S2", "PAY1", "-5.00", charge="C2", reverses="S1"),
        ],
    )
    assert found(book) == [
        (
            "accounts[0].splits[1].charge",
            "split S2 reverses S1, which paid installment I1 (charge C1), but names charge C2",
        )
    ]


def test_reversals_never_exceed_the_split() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [
            split("S1", "PAY1", "10.00"),
            split("S2", "PAY1", "-6.00", reverses="S1"),
            split("S3", "PAY1", "-4.00", reverses="S1"),
            split("S4", "PAY1", "-0.01", reverses="S1"),
        ],
    )
    assert found(book) == [
        (
            "accounts[0].splits[3].amount",
            "reversals of split S1 add up to 10.01, more than the 10.00 it moved",
        )
    ]


def test_a_positive_split_that_claims_to_reverse() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [split("S1", "PAY1", "10.00"), split("S2", "PAY1", "5.00", reverses="S1")],
    )
    assert found(book) == [
        (
            "accounts[0].splits[1].amount",
            "split S2 reverses S1 but is positive (5.00); a reversal has a negative amount",
        )
    ]


def test_a_refund_pays_no_charge() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), refund("RF1", "-10.00", "PAY1")],
        [split("S1", "RF1", "10.00")],
    )
    assert found(book) == [
        (
            "accounts[0].splits[0].payment",
            "split S1 allocates refund RF1; a refund is money paid back and pays no charge",
        )
    ]


def test_refunds_never_exceed_the_payment_amount() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), refund("RF1", "-80.00", "PAY1"),
         refund("RF2", "-40.00", "PAY1")],
        [],
    )  # fmt: skip
    assert found(book) == [
        ("accounts[0].payments[0]", "PAY1 is refunded 120.00, more than its amount 100.00")
    ]


def test_a_refunded_payment_over_allocated_is_the_settings_business() -> None:
    # Refunded 30.00 while 100.00 was unallocated, then allocated 100.00 under
    # ``negative unallocated warn|allow``: both steps were allowed, in that order.
    book = ledger(
        [payment("PAY1", "100.00"), refund("RF1", "-30.00", "PAY1"),
         refund("RF2", "-20.00", "PAY1")],
        [split("S1", "PAY1", "60.00"), split("S2", "PAY1", "40.00", charge="C2")],
    )  # fmt: skip
    assert found(book) == []
    assert found(book, allow_negative_unallocated=False) == [
        ("accounts[0].payments[0]",
         "PAY1 has 100.00 allocated and 50.00 refunded, more than its amount 100.00 "
         "(unallocated -50.00)")
    ]  # fmt: skip


def test_paysplit_validates_a_refunded_payment_it_over_allocated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger an allowed over-allocation of a refunded payment writes is valid."""
    monkeypatch.setenv("PAYSPLIT_NOW", "2025-03-01T09:00:00")
    book = tmp_path / "book.json"
    book.write_text(dump_ledger(ledger([payment("PAY1", "100.00")], [])))
    rules = tmp_path / "allow.rules"
    rules.write_text("settings:\n    negative unallocated allow\n")
    assert main(["refund", "--ledger", str(book), "--payment", "PAY1", "--amount", "30",
                 "--in-place"]) == 0  # fmt: skip
    assert main(["allocate", "--ledger", str(book), "--rules", str(rules), "--payment", "PAY1",
                 "--charge", "C1", "--amount", "100", "--in-place"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["validate", "--ledger", str(book), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"] == []


def test_a_void_refund_counts_nowhere() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), refund("RF1", "-90.00", "PAY1", void=True)],
        [split("S1", "PAY1", "60.00")],
    )
    assert check_invariants(book) == []


def test_a_void_payment_and_its_splits_count_nowhere() -> None:
    book = ledger(
        [payment("PAY1", "10.00", void=True)],
        [split("S1", "PAY1", "60.00")],
    )
    assert check_invariants(book, allow_negative_unallocated=False) == []


def test_negative_unallocated_is_accepted_unless_the_caller_says_it_was_blocked() -> None:
    book = ledger([payment("INS1", "200.00", payer="insurance")],
                  [split("S1", "INS1", "100.00"), split("S2", "INS1", "40.00", charge="C2"),
                   split("S3", "INS1", "60.00", installment="I1"),
                   split("S4", "INS1", "40.00", charge="C2")])  # fmt: skip
    assert check_invariants(book) == []
    assert found(book, allow_negative_unallocated=False) == [
        (
            "accounts[0].payments[0]",
            "INS1 has 240.00 allocated, more than its amount 200.00 (unallocated -40.00)",
        )
    ]


def test_overpaid_charges_and_installments_only_when_the_caller_says_so() -> None:
    book = ledger(
        [payment("PAY1", "300.00")],
        [split("S1", "PAY1", "60.00", installment="I1"), split("S2", "PAY1", "50.00"),
         split("S3", "PAY1", "40.01", charge="C2")],
    )  # fmt: skip
    assert check_invariants(book) == []
    assert found(book, allow_overpaid_charges=False) == [
        ("accounts[0].charges[0]", "C1 is paid 10.00 more than it owes (balance -10.00)"),
        ("accounts[0].charges[1]", "C2 is paid 0.01 more than it owes (balance -0.01)"),
        ("accounts[0].plans[0].installments[0]",
         "installment I1 is paid 10.00 more than its amount 50.00"),
    ]  # fmt: skip


def test_a_transfer_moves_the_credit_of_one_payment() -> None:
    book = ledger(
        [payment("PAY1", "100.00"), payment("PAY2", "100.00")],
        [split("S1", "PAY1", "10.00", transfer="T1"), split("S2", "PAY2", "10.00", transfer="T1")],
    )
    assert found(book) == [
        (
            "accounts[0].splits[1].transfer",
            "transfer T1 moves credit of PAY1 and of PAY2; a transfer moves the credit of one "
            "payment",
        ),
        (
            "accounts[0].splits[1].transfer",
            "transfer T1 is already split S1's; every split that moves posted credit has a "
            "transfer id of its own",
        ),
    ]


def test_a_transfer_and_its_reversal_may_share_the_id() -> None:
    book = ledger(
        [payment("PAY1", "100.00")],
        [
            split("S1", "PAY1", "10.00", transfer="T1"),
            split("S2", "PAY1", "-10.00", transfer="T1", reverses="S1"),
        ],
    )
    assert check_invariants(book) == []


def test_problems_come_in_document_order() -> None:
    book = ledger(
        [payment("PAY1", "10.00"), refund("RF1", "-15.00", "PAY1")],
        [split("S1", "PAY1", "0.00"), split("S2", "PAY1", "5.00")],
    )
    assert [p.path for p in check_invariants(book)] == [
        "accounts[0].payments[0]",
        "accounts[0].splits[0].amount",
    ]
    assert isinstance(check_invariants(book)[0], Problem)


@given(
    st.lists(st.integers(min_value=1, max_value=5000), max_size=6),
    st.lists(st.integers(min_value=1, max_value=5000), max_size=3),
    st.integers(min_value=0, max_value=30000),
)
def test_allocated_plus_refunded_plus_unallocated_is_the_amount(
    split_cents: list[int], refund_cents: list[int], amount_cents: int
) -> None:
    def text(cents: int) -> str:
        return f"{cents // 100}.{cents % 100:02d}"

    book = ledger(
        [payment("PAY1", text(amount_cents))]
        + [refund(f"RF{n}", "-" + text(c), "PAY1") for n, c in enumerate(refund_cents)],
        [split(f"S{n}", "PAY1", text(c)) for n, c in enumerate(split_cents)],
    )
    figures = AccountFigures.of(book.accounts[0])
    pay1 = figures.payments["PAY1"]
    total = figures.allocated(pay1) + figures.refunded(pay1) + figures.unallocated(pay1)
    assert total == amount_cents
    refunds_too_big = sum(refund_cents) > amount_cents
    assert [p.message.endswith(f"more than its amount {text(amount_cents)}")
            for p in check_invariants(book)] == ([True] if refunds_too_big else [])  # fmt: skip
    negative = figures.unallocated(pay1) < 0
    assert len(check_invariants(book, allow_negative_unallocated=False)) == int(
        refunds_too_big or negative
    )
