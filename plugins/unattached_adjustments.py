"""``block on unattached negative adjustments`` (002).

Open Dental will not transfer unearned income while the account has
unattached negative adjustments: their credit is already paying production
first-in first-out, and allocating on top would pay the same charge twice.
The operation is blocked with a reason that says what to do; manual
allocation stays possible.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.money import format_cents
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Guard, Operation


class BlockOnUnattachedAdjustments(Guard):
    def check_operation(self, operation: Operation) -> str | None:
        if operation.manual:
            return None
        unattached = [
            adjustment
            for adjustment in operation.account.adjustments
            if adjustment.charge is None
            and adjustment.amount < 0
            and adjustment.patient in operation.patients
        ]
        if not unattached:
            return None
        listed = ", ".join(f"{a.id} {format_cents(a.amount)}" for a in unattached)
        return (
            f"account {operation.account.id} has unattached negative adjustments ({listed}): "
            "attach them to a procedure, or allocate manually"
        )


def _build(_arguments: Arguments) -> BlockOnUnattachedAdjustments:
    return BlockOnUnattachedAdjustments()


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="block on unattached negative adjustments",
            kind="guard",
            build=_build,
            summary="Refuse to allocate while the account has unattached negative "
            "adjustments; attach them or allocate manually (002).",
            example="from unearned, include account, block on unattached negative adjustments",
            where="both",
        )
    ]
