"""A ledger reader for the practice system's flat CSV export (``--ledger-format dental-csv``).

Many practice systems export one CSV of records rather than a JSON document.
One row per patient, charge or payment; the ``record`` column says which::

    record,account,id,patient,guarantor,provider,date,code,amount,status,payer,method
    patient,A1,P1,,,,,,,,,
    patient,A1,P2,,P1,,,,,,,
    charge,A1,C1,P1,,DR1,2025-01-22,D0150,100.00,due_patient,,
    payment,A1,PAY1,P1,,DR1,2025-02-25,,200.00,,patient,cash

The reader only reshapes rows into a ``paysplit-ledger/1`` document; paysplit
then validates it like any ledger, so a wrong amount or a dangling patient is
reported with its path. Amounts stay text: never floats.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLUMNS = (
    "record", "account", "id", "patient", "guarantor", "provider", "date",
    "code", "amount", "status", "payer", "method",
)  # fmt: skip


def read_csv_export(path: Path) -> Mapping[str, Any]:
    """The export at ``path`` as a ledger document; ValueError names the bad row."""
    with path.open(newline="", encoding="utf-8") as export:
        rows = list(csv.DictReader(export))
        header = tuple(rows[0].keys()) if rows else ()
    if rows and header != COLUMNS:
        raise ValueError(f"{path.name}: the header must be {','.join(COLUMNS)}")
    accounts: dict[str, dict[str, list[dict[str, Any]]]] = {}
    providers: list[str] = []
    for number, row in enumerate(rows, start=2):
        account = accounts.setdefault(
            row["account"], {"patients": [], "charges": [], "payments": []}
        )
        if row["provider"] and row["provider"] not in providers:
            providers.append(row["provider"])
        kind = row["record"]
        if kind == "patient":
            account["patients"].append({"id": row["id"], "guarantor": row["guarantor"] or None})
        elif kind == "charge":
            account["charges"].append(
                {
                    "id": row["id"],
                    "patient": row["patient"],
                    "provider": row["provider"],
                    "date": row["date"],
                    "code": row["code"],
                    "amount": row["amount"],
                    "status": row["status"],
                }
            )
        elif kind == "payment":
            account["payments"].append(
                {
                    "id": row["id"],
                    "patient": row["patient"],
                    "payer": row["payer"],
                    "provider": row["provider"] or None,
                    "date": row["date"],
                    "method": row["method"],
                    "type": "payment",
                    "amount": row["amount"],
                }
            )
        else:
            raise ValueError(
                f"{path.name} line {number}: record must be patient, charge or payment, "
                f"not {kind!r}"
            )
    return {
        "format": "paysplit-ledger/1",
        "practice": {"name": path.stem, "currency": "USD"},
        "providers": [{"id": provider} for provider in providers],
        "accounts": [{"id": account_id, **records} for account_id, records in accounts.items()],
    }
