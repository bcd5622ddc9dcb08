"""Apply Automatically's four modes (004), written ``mode NAME``.

Each mode is the status filter the billing system applies, oldest charge
first; ``mode payment plans`` pays the oldest installments instead.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.phrases import Mode


@hookimpl
def paysplit_modes() -> list[Mode]:
    return [
        Mode(
            name="due patient",
            expansion="oldest first where status in (due_patient, pending_patient)",
            summary="Apply to charges DUE PATIENT or PENDING PATIENT, oldest first (004).",
        ),
        Mode(
            name="due insurance",
            expansion="oldest first where status in (due_insurance, pending_payer)",
            summary="Apply to charges DUE INSURANCE or PENDING PAYER, oldest first (004).",
        ),
        Mode(
            name="collection",
            expansion="oldest first where status in (collection, collection_agency)",
            summary="Apply to charges at COLLECTION or with a COLLECTION AGENCY, oldest first.",
        ),
        Mode(
            name="payment plans",
            expansion="to installments, oldest first",
            summary="Apply to the oldest installments of the patient's payment plans (004).",
        ),
    ]
