"""``whole charges only``: a charge is paid in full or not at all.

An older therapy-practice rule, beyond the five seeds: pay the smallest
invoice first and never pay one partly (``smallest first, whole charges
only``). A charge the remaining credit cannot pay in full is skipped, and the
rule goes on to the next.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.money import format_cents
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, ProposedSplit, Refuse, Verdict


class WholeChargesOnly(Guard):
    def check_split(self, split: ProposedSplit) -> Verdict | None:
        owed = split.target.allocatable
        if split.amount >= owed:
            return None
        return Refuse(
            f"{format_cents(split.amount)} cannot pay the whole {format_cents(owed)} "
            f"of {split.target.id}"
        )


def _build(_arguments: Arguments) -> WholeChargesOnly:
    return WholeChargesOnly()


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="whole charges only",
            kind="guard",
            build=_build,
            summary="Pay a charge in full or skip it; never partly "
            "(an older therapy-practice rule).",
            example="smallest first, whole charges only",
        )
    ]
