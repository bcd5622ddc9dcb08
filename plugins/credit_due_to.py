"""``leftover credit due patient|insurance ...`` (004): leftover becomes an account credit.

When a payment is greater than what the rule could pay, the leftover stays on
the payment as its unallocated amount, annotated with who the credit is due
to, a memo ("Account credit" unless given), and the provider and office it
is reported under (``same`` = the payment's own, which is also the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paysplit import hookimpl
from paysplit.ledger import CreditNote, Payment
from paysplit.money import Cents
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import LeftoverHandler

SAME = "same"


@dataclass(frozen=True)
class CreditDueTo(LeftoverHandler):
    due_to: Literal["patient", "insurance"]
    memo: str = "Account credit"
    provider: str = SAME
    office: str = SAME

    def leftover(self, payment: Payment, amount: Cents) -> CreditNote | None:
        return CreditNote(
            due_to=self.due_to,
            memo=self.memo,
            provider=payment.provider if self.provider == SAME else self.provider,
            office=payment.office if self.office == SAME else self.office,
        )


def _build(arguments: Arguments) -> CreditDueTo:
    due_to = arguments["due_to"]
    memo = arguments.get("memo")
    provider = arguments.get("provider")
    office = arguments.get("office")
    return CreditDueTo(
        due_to="insurance" if due_to == "insurance" else "patient",
        memo=memo if isinstance(memo, str) else "Account credit",
        provider=provider if isinstance(provider, str) else SAME,
        office=office if isinstance(office, str) else SAME,
    )


@hookimpl
def paysplit_leftover_handlers() -> list[Phrase]:
    return [
        Phrase(
            pattern="credit due {due_to:patient|insurance} [memo {memo:string}] "
            "[provider {provider:provider|same}] [office {office:office|same}]",
            kind="leftover",
            build=_build,
            summary="Leftover becomes an account credit due to the patient or insurance, "
            "with a memo and the provider and office it is reported under (004).",
            example='leftover credit due patient memo "Account credit" provider same office same',
        )
    ]
