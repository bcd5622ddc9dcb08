"""The baseline: a plain, hand-written Python loop doing the benchmark rule's allocation.

This is what a developer would write without paysplit for exactly one rule,
``oldest first where status in (due_patient, pending_patient), no
cross-doctor`` applied to every payment with unallocated credit, and nothing
else: no rule language, no plugins, no trace, no schema validation beyond
what the loop needs, money as int cents. It lives in ``benchmarks/`` (not in
the package) and is the yardstick of ``docs/performance.md``.

Semantics it reproduces (``docs/semantics.md``): a payment's unallocated
amount is amount - its splits - what refunds of it took (void payments and
their splits count nowhere); targets are the charges of the payment's own
patient, debits left out, in the two statuses; a charge's allocatable
amount is its balance (amount + attached adjustments - splits) less the
insurance estimate for a patient payment (never below 0), the whole balance
for an insurance payment; a payment entered against a provider never pays
another provider's charge; charges oldest first, ties by ledger order;
payments by date, then ledger order, each seeing the splits made before it.

    python -m benchmarks.handwritten IN.jsonl OUT.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

DUE = frozenset({"due_patient", "pending_patient"})


class Charge(NamedTuple):
    id: str
    patient: str
    provider: str
    date: str
    kind: str
    amount: int
    status: str
    estimate: int


class Payment(NamedTuple):
    id: str
    patient: str
    payer: str
    provider: str | None
    date: str
    type: str
    amount: int
    void: bool
    refunds: str | None


class Split(NamedTuple):
    id: str
    payment: str
    charge: str | None
    amount: int


class Account(NamedTuple):
    """One account as read: typed records with int cents, nothing summed yet."""

    id: str
    charges: list[Charge]
    payments: list[Payment]
    adjustments: list[tuple[str, int]]
    """(charge id, cents) of the attached adjustments."""
    splits: list[Split]


def cents(value: Any) -> int:
    """Exact cents from "12.50" / "-3" / 12; anything else (a float included) is refused."""
    if isinstance(value, str):
        whole, dot, part = value.partition(".")
        negative = whole.startswith("-")
        digits = whole[1:] if negative else whole
        if not digits.isdigit() or (dot and (not part.isdigit() or len(part) > 2)):
            raise ValueError(f"bad amount {value!r}")
        result = int(digits) * 100 + (int(part.ljust(2, "0")) if dot else 0)
        return -result if negative else result
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 100
    raise ValueError(f"bad amount {value!r}")


def parse(line: str | bytes) -> Account:
    """One JSON Lines account into tuples with int cents."""
    doc = json.loads(line)
    charges = [
        Charge(
            c["id"],
            c["patient"],
            c["provider"],
            c["date"],
            c.get("kind", "procedure"),
            cents(c["amount"]),
            c["status"],
            cents(c.get("insurance_estimate", 0)),
        )
        for c in doc.get("charges", ())
    ]
    payments = [
        Payment(
            p["id"],
            p["patient"],
            p["payer"],
            p.get("provider"),
            p["date"],
            p["type"],
            cents(p["amount"]),
            bool(p.get("void", False)),
            p.get("refunds"),
        )
        for p in doc.get("payments", ())
    ]
    adjustments = [
        (a["charge"], cents(a["amount"]))
        for a in doc.get("adjustments", ())
        if a.get("charge") is not None
    ]
    splits = [
        Split(s["id"], s["payment"], s.get("charge"), cents(s["amount"]))
        for s in doc.get("splits", ())
    ]
    return Account(doc["id"], charges, payments, adjustments, splits)


Made = tuple[str, str, str, int]
"""A split the loop makes: (split id, payment id, charge id, cents)."""


def allocate(account: Account) -> list[tuple[str, list[Made], int]]:
    """Apply the rule to every payment with unallocated credit: (payment, splits, left) each.

    It starts from the records as read and makes its own sums (what each charge was
    paid and adjusted, what each payment has allocated and refunded), as paysplit's
    allocation step makes the account's figures: both are timed doing the same work.
    """
    adjusted: dict[str, int] = {}
    for charge_id, amount in account.adjustments:
        adjusted[charge_id] = adjusted.get(charge_id, 0) + amount
    void = {p.id for p in account.payments if p.void}
    paid: dict[str, int] = {}
    allocated: dict[str, int] = {}
    split_ids: set[str] = set()
    split_count: dict[str, int] = {}
    for s in account.splits:
        split_ids.add(s.id)
        split_count[s.payment] = split_count.get(s.payment, 0) + 1
        if s.payment in void:
            continue
        allocated[s.payment] = allocated.get(s.payment, 0) + s.amount
        if s.charge is not None:
            paid[s.charge] = paid.get(s.charge, 0) + s.amount
    refunded: dict[str, int] = {}
    for p in account.payments:
        if p.type == "refund" and not p.void and p.refunds is not None:
            refunded[p.refunds] = refunded.get(p.refunds, 0) - p.amount
    queue = []
    for position, p in enumerate(account.payments):
        if p.void or p.type != "payment":
            continue
        left = p.amount - allocated.get(p.id, 0) - refunded.get(p.id, 0)
        if left > 0:
            queue.append((p.date, position, p, left))
    queue.sort(key=lambda entry: (entry[0], entry[1]))
    ordered = sorted(
        (c for c in account.charges if c.status in DUE and c.kind != "debit"),
        key=lambda c: c.date,  # a stable sort keeps ledger order for equal dates
    )
    results = []
    for _, _, p, credit in queue:
        made: list[Made] = []
        insurance = p.payer == "insurance"
        for c in ordered:
            if credit <= 0:
                break
            if c.patient != p.patient:
                continue
            if p.provider is not None and p.provider != c.provider:
                continue
            balance = c.amount + adjusted.get(c.id, 0) - paid.get(c.id, 0)
            room = balance if insurance else balance - c.estimate
            if room <= 0:
                continue
            take = credit if credit < room else room
            count = split_count.get(p.id, 0)
            while True:
                count += 1
                split_id = f"{p.id}-{count}"
                if split_id not in split_ids:
                    break
            split_count[p.id] = count
            split_ids.add(split_id)
            made.append((split_id, p.id, c.id, take))
            paid[c.id] = paid.get(c.id, 0) + take
            credit -= take
        results.append((p.id, made, credit))
    return results


def money(value: int) -> str:
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}{whole}.{part:02d}"


def run(in_path: str, out_path: str) -> dict[str, int]:
    """Read, allocate and write one JSON Lines ledger; counts of what was done."""
    accounts = payments = splits = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with open(in_path, "rb") as source, open(out_path, "w", encoding="utf-8") as out:
        source.readline()  # the header: nothing in it matters to this rule
        for line_no, line in enumerate(source, start=2):
            if not line.strip():
                continue
            account = parse(line)
            accounts += 1
            for payment_id, made, left in allocate(account):
                payments += 1
                splits += len(made)
                record = {
                    "account": account.id,
                    "line": line_no,
                    "payment": payment_id,
                    "splits": [{"id": s[0], "charge": s[2], "amount": money(s[3])} for s in made],
                    "unallocated": money(left),
                }
                out.write(dumps(record) + "\n")
    return {"accounts": accounts, "payments": payments, "splits": splits}


def splits_of(accounts: Iterable[Account]) -> list[Made]:
    """Every split the loop makes for these accounts, in order (for comparisons)."""
    return [s for a in accounts for _, made, _ in allocate(a) for s in made]


if __name__ == "__main__":
    started = time.perf_counter()
    counts = run(sys.argv[1], sys.argv[2])
    counts["seconds"] = round(time.perf_counter() - started, 3)  # type: ignore[assignment]
    print(json.dumps(counts))
