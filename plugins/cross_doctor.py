"""``no cross-doctor`` (003): credit of one provider never pays another provider's charge.

Oasis keeps balances per doctor and will not allocate one doctor's credit to
another's invoices. Automatic rules skip such a charge (the trace says why);
a manual allocation across providers is refused, naming both. Credit with no
provider belongs to no doctor and is not restricted.
"""

from __future__ import annotations

from collections.abc import Callable

from paysplit import hookimpl
from paysplit.ledger import Charge, Payment
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, ProposedSplit, Refuse, Verdict


class NoCrossDoctor(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        return _across_doctors(split.payment, split.target.charge)

    def charge_form(self) -> Callable[[Payment, Charge], Verdict | None]:
        # The verdict reads only the payment's and the charge's providers.
        return _across_doctors


def _across_doctors(payment: Payment, charge: Charge) -> Verdict | None:
    credit_provider = payment.provider
    if credit_provider is None or credit_provider == charge.provider:
        return None
    return Refuse(
        f"credit of {credit_provider} cannot pay {charge.provider}'s charge {charge.id}"
        f" (payment {payment.id} was entered against {credit_provider})"
    )


def _build(_arguments: Arguments) -> NoCrossDoctor:
    return NoCrossDoctor()


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="no cross-doctor",
            kind="guard",
            build=_build,
            summary="Credit of one provider never pays another provider's charge (003).",
            example="oldest first, include account, no cross-doctor",
            where="both",
            makes_redundant=("match provider",),
        )
    ]
