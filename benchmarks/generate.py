"""Deterministic, seeded synthetic JSON Lines ledgers for batch benchmarks.

    python -m benchmarks.generate --accounts 20000 --seed 6 --out bench-out/ledger-20k.jsonl

One header line, then one account per line. Every account has 1-4 patients
(the first is the guarantor of some of the others), 1-3 of the practice's
providers, 5-40 charges spread over the five statuses ``due_patient``,
``pending_patient``, ``due_insurance``, ``pending_payer`` and ``collection``
(a few of them debits or positive adjustments, some with an insurance
estimate or an attached adjustment), and 1-3 payments (mostly from the
patient, some from insurance, some entered against no provider, a few void,
some already partly allocated or partly refunded).

The stream is one ``random.Random(seed)``, so the first N accounts of a file
of M > N accounts are exactly the accounts of a file of N: a 20k run is a
prefix of the 200k run. Amounts are strings with two places, except a few
whole-dollar amounts written as JSON integers (both are valid ledger input).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATUSES = ("due_patient", "pending_patient", "due_insurance", "pending_payer", "collection")
PROVIDERS = tuple(f"DR{n}" for n in range(1, 13))
OFFICES = ("MAIN", "NORTH", "SOUTH")
CODES = ("D0120", "D0150", "D0274", "D1110", "D2391", "D2750", "D4341", "99213", "99214")
METHODS = ("cash", "card", "check", "eft")
FIRST_NAMES = ("Jenny", "Tom", "Ana", "Raj", "Mei", "Omar", "Lena", "Sam", "Ivy", "Noah")
LAST_NAMES = ("Harris", "Smith", "Okafor", "Nguyen", "Garcia", "Kowalski", "Ito", "Brown")
AS_OF = dt.date(2025, 6, 30)
CHARGE_DAYS = (AS_OF - dt.date(2023, 1, 1)).days
PAYMENT_DAYS = 365


def header() -> dict[str, Any]:
    """The header line: practice, providers and offices shared by every account."""
    return {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Benchmark Dental Group", "currency": "USD", "as_of": str(AS_OF)},
        "providers": [{"id": p, "name": f"Dr {p}"} for p in PROVIDERS],
        "offices": [{"id": o, "name": o.title()} for o in OFFICES],
    }


def _money(rng: random.Random, cents: int) -> str | int:
    """Two-place string, or (for about one whole-dollar amount in ten) a JSON integer."""
    if cents % 100 == 0 and rng.random() < 0.1:
        return cents // 100
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def account(rng: random.Random, number: int) -> dict[str, Any]:
    """One synthetic account; ids are unique across the file (prefixed with the account's)."""
    aid = f"A{number:07d}"
    last = rng.choice(LAST_NAMES)
    patients: list[dict[str, Any]] = []
    for n in range(1, rng.randint(1, 4) + 1):
        patient: dict[str, Any] = {"id": f"{aid}-P{n}", "name": f"{rng.choice(FIRST_NAMES)} {last}"}
        if n > 1 and rng.random() < 0.7:
            patient["guarantor"] = f"{aid}-P1"
        patients.append(patient)
    patient_ids = [p["id"] for p in patients]
    providers = rng.sample(PROVIDERS, rng.randint(1, 3))

    charges: list[dict[str, Any]] = []
    for n in range(1, rng.randint(5, 40) + 1):
        amount = rng.randint(15, 650) * 100 + rng.choice((0, 0, 50, rng.randint(0, 99)))
        status = rng.choice(STATUSES)
        kind_roll = rng.random()
        charge: dict[str, Any] = {
            "id": f"{aid}-C{n}",
            "patient": rng.choice(patient_ids),
            "provider": rng.choice(providers),
            "office": rng.choice(OFFICES),
            "date": str(AS_OF - dt.timedelta(days=rng.randint(0, CHARGE_DAYS))),
            "code": rng.choice(CODES),
            "amount": _money(rng, amount),
            "status": status,
        }
        if kind_roll < 0.04:
            charge["kind"] = "debit"
        elif kind_roll < 0.06:
            charge["kind"] = "adjustment"
        if status in ("due_insurance", "pending_payer") or rng.random() < 0.1:
            charge["insurance_estimate"] = _money(rng, amount * rng.randint(0, 80) // 100)
        charges.append(charge)

    adjustments: list[dict[str, Any]] = []
    for n in range(1, rng.choice((0, 0, 0, 1, 1, 2)) + 1):
        target = rng.choice(charges)
        adjustments.append(
            {
                "id": f"{aid}-ADJ{n}",
                "patient": target["patient"],
                "provider": target["provider"],
                "date": target["date"],
                "amount": _money(rng, -rng.randint(100, 2500)),
                "charge": target["id"],
                "memo": "courtesy",
            }
        )
    if rng.random() < 0.03:
        adjustments.append(
            {
                "id": f"{aid}-ADJU",
                "patient": patient_ids[0],
                "amount": _money(rng, -rng.randint(500, 5000)),
                "memo": "unattached credit",
            }
        )

    payments: list[dict[str, Any]] = []
    splits: list[dict[str, Any]] = []
    for n in range(1, rng.randint(1, 3) + 1):
        pid = f"{aid}-PAY{n}"
        amount = rng.randint(10, 900) * 100 + rng.choice((0, 0, rng.randint(0, 99)))
        patient_id = rng.choice(patient_ids)
        payment: dict[str, Any] = {
            "id": pid,
            "patient": patient_id,
            "payer": "insurance" if rng.random() < 0.2 else "patient",
            "provider": rng.choice(providers) if rng.random() < 0.7 else None,
            "office": rng.choice(OFFICES),
            "date": str(AS_OF - dt.timedelta(days=rng.randint(0, PAYMENT_DAYS))),
            "method": rng.choice(METHODS),
            "type": "payment",
            "amount": _money(rng, amount),
        }
        if rng.random() < 0.03:
            payment["void"] = True
        payments.append(payment)
        own = [c for c in charges if c["patient"] == patient_id and c.get("kind") != "debit"]
        if own and rng.random() < 0.2:
            target = rng.choice(own)
            charge_cents = _cents(target["amount"])
            part = min(charge_cents // 2, amount // 3)
            if part > 0:
                splits.append(
                    {
                        "id": f"{pid}-1",
                        "payment": pid,
                        "charge": target["id"],
                        "amount": _money(rng, part),
                        "date": payment["date"],
                        "rule": "by_hand",
                    }
                )
                amount -= part
        if rng.random() < 0.05 and amount > 200 and not payment.get("void"):
            payments.append(
                {
                    "id": f"{pid}-R",
                    "patient": patient_id,
                    "payer": payment["payer"],
                    "provider": payment["provider"],
                    "date": payment["date"],
                    "type": "refund",
                    "amount": _money(rng, -(amount // 4)),
                    "refunds": pid,
                }
            )

    return {
        "id": aid,
        "patients": patients,
        "charges": charges,
        "adjustments": adjustments,
        "payments": payments,
        "splits": splits,
    }


def _cents(amount: str | int) -> int:
    if isinstance(amount, int):
        return amount * 100
    whole, _, part = amount.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int(part.ljust(2, "0")))


def lines(accounts: int, seed: int) -> Iterator[str]:
    """The file's lines (each ending in a newline): header, then ``accounts`` accounts."""
    rng = random.Random(seed)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    yield dumps(header()) + "\n"
    for number in range(1, accounts + 1):
        yield dumps(account(rng, number)) + "\n"


def write(path: Path, accounts: int, seed: int) -> Path:
    """Write the ledger atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            out.writelines(lines(accounts, seed))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ledger.jsonl"))
    args = parser.parse_args(argv)
    if args.accounts < 0:
        parser.error("--accounts must be 0 or more")
    write(args.out, args.accounts, args.seed)
    print(f"wrote {args.accounts} accounts to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
