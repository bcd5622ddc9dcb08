"""``no cross-doctor`` (003): credit of one provider never pays another provider's charge.

Oasis keeps balances per doctor and will not allocate one doctor's credit to
another's invoices. Automatic rules skip such a charge (the trace says why);
a manual allocation across providers is refused, naming both. Credit with no
provider belongs to no doctor and is not restricted.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, ProposedSplit, Refuse, Verdict


class NoCrossDoctor(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        credit_provider = split.payment.provider
        charge = split.target.charge
        if credit_provider is None or credit_provider == charge.provider:
            return None
        return Refuse(
            f"credit of {credit_provider} cannot pay {charge.provider}'s charge {charge.id}"
            f" (payment {split.payment.id} was entered against {credit_provider})"
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
