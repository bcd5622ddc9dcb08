"""``overpay charge block|warn|allow`` (001, 002): may a manual split exceed what a charge owes?

Open Dental warns before paysplits exceed the balance; paysplit refuses by
default (``block``), or lets a practice ``warn`` or ``allow``. Automatic
rules never put more on a charge than its allocatable amount.
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
class OverpayCharge(Guard):
    mode: Mode

    speaks_only_beyond_limits = True
    """It refuses or warns only above the limits (see :class:`paysplit.policy.Guard`)."""

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        allowed = split.target.allocatable
        if self.mode == "allow" or split.amount <= allowed:
            return None
        message = (
            f"{format_cents(split.amount)} is more than the {format_cents(allowed)} "
            f"that {split.target.id} still allows"
        )
        if self.mode == "warn":
            return Warn(message)
        return Refuse(message + " (overpay charge block)")


def _build(arguments: Arguments) -> OverpayCharge:
    # The compiler has checked the word against the pattern's choices.
    return OverpayCharge(_MODES[str(arguments["mode"])])


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="overpay charge {mode:block|warn|allow}",
            kind="guard",
            build=_build,
            summary="A manual split above what the charge still owes: "
            "block (the default), warn, or allow.",
            example="overpay charge warn",
            where="settings",
            default="overpay charge block",
        )
    ]
