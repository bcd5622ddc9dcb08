"""``match provider|office|patient`` (002): matching credit and charges are used first.

A preference, as in Open Dental's Allocate Unearned: credit assigned to the
provider (office) of the production is allocated first, then the rest, oldest
first; it never forbids crossing (``no cross-doctor`` does that). ``match
patient`` is Open Dental's "prefer this patient". A credit with no provider
(office) matches no provider (office).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paysplit import hookimpl
from paysplit.ledger import Payment
from paysplit.phrases import Phrase
from paysplit.policy import Preference, Target


@dataclass(frozen=True)
class Match(Preference):
    label: Literal["provider", "office", "patient"]

    def prefers(self, payment: Payment, target: Target) -> bool:
        charge = target.charge
        if self.label == "provider":
            return payment.provider is not None and payment.provider == charge.provider
        if self.label == "office":
            return payment.office is not None and payment.office == charge.office
        return payment.patient == charge.patient


def _phrase(label: Literal["provider", "office", "patient"], summary: str) -> Phrase:
    return Phrase(
        pattern=f"match {label}",
        kind="preference",
        build=lambda _arguments: Match(label),
        summary=summary,
        example=f"from unearned, include account, match {label}, oldest first",
    )


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        _phrase(
            "provider",
            "Credit of the charge's provider is used first, then the rest (002).",
        ),
        _phrase("office", "Credit of the charge's office (clinic) is used first, then the rest."),
        _phrase(
            "patient",
            "The payment's own patient's charges (and credit) come first "
            "(Open Dental's prefer this patient).",
        ),
    ]
