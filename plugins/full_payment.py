"""``only when payment covers balance`` (003): allocate only a payment that pays everything.

Oasis bypasses its Credit Allocation screen when the patient pays the whole
bill and allocates oldest first; for a part payment it stops, because it
cannot know which invoices to pay. This guard keeps the allocation only when
every eligible target was paid in full; otherwise the payment stays
unallocated, with a warning, for allocation by hand.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.money import format_cents
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, Outcome


class OnlyWhenPaymentCoversBalance(Guard):
    def check_outcome(self, outcome: Outcome) -> str | None:
        if not outcome.unpaid:
            return None
        owed = sum(amount for _, amount in outcome.unpaid) + sum(a for _, _, a in outcome.splits)
        which = "the payment" if outcome.payment is None else f"payment {outcome.payment.id}"
        return (
            f"{which} ({format_cents(outcome.credit_before)}) does not cover the "
            f"{format_cents(owed)} owed on the eligible charges; it stays unallocated "
            "for allocation by hand"
        )


def _build(_arguments: Arguments) -> OnlyWhenPaymentCoversBalance:
    return OnlyWhenPaymentCoversBalance()


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="only when payment covers balance",
            kind="guard",
            build=_build,
            summary="Allocate only when the credit pays every eligible charge in full; "
            "a part payment stays unallocated with a warning (003).",
            example="oldest first, include account, only when payment covers balance",
        )
    ]
