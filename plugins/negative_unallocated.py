"""``negative unallocated block|warn|allow`` (001): may a payment be over-allocated?

The therapy system lets staff allocate more than a payment's amount and
shows a negative unallocated amount; its advice is to allocate only what is
available. paysplit refuses by default (``block``); a practice may ``warn``
or ``allow``. Only manual allocation can over-allocate: automatic rules never
take more than the credit left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paysplit import hookimpl
from paysplit.money import format_cents
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, ProposedSplit, Refuse, Verdict, Warn

Mode = Literal["block", "warn", "allow"]
_MODES: dict[str, Mode] = {"block": "block", "warn": "warn", "allow": "allow"}


@dataclass(frozen=True)
class NegativeUnallocated(Guard):
    mode: Mode

    speaks_only_beyond_limits = True
    """It refuses or warns only above the limits (see :class:`paysplit.policy.Guard`)."""

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        if self.mode == "allow" or split.amount <= split.credit_left:
            return None
        left = split.credit_left - split.amount
        message = (
            f"allocating {format_cents(split.amount)} of payment {split.payment.id} would leave "
            f"{format_cents(left)} unallocated: only {format_cents(split.credit_left)} is available"
        )
        if self.mode == "warn":
            return Warn(message)
        return Refuse(message + " (negative unallocated block)")


def _build(arguments: Arguments) -> NegativeUnallocated:
    # The compiler has checked the word against the pattern's choices.
    return NegativeUnallocated(_MODES[str(arguments["mode"])])


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="negative unallocated {mode:block|warn|allow}",
            kind="guard",
            build=_build,
            summary="Over-allocating a payment (a negative unallocated amount, 001): "
            "block (the default), warn, or allow.",
            example="negative unallocated warn",
            where="settings",
            default="negative unallocated block",
        )
    ]
