"""``include account`` (002, 003): targets and pooled credit span the whole family account."""

from __future__ import annotations

from collections.abc import Iterable

from paysplit import hookimpl
from paysplit.ledger import Account
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Scope


class IncludeAccount(Scope):
    def target_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.id for p in account.patients]

    def credit_patients(self, account: Account, patient: str) -> Iterable[str]:
        return [p.id for p in account.patients]


def _build(_arguments: Arguments) -> IncludeAccount:
    return IncludeAccount()


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        Phrase(
            pattern="include account",
            kind="scope",
            build=_build,
            summary="Every patient of the account: their charges are targets and their "
            "credit may pay them (Open Dental's family unearned, Oasis' account balance).",
            example="from unallocated, include account, oldest first",
        )
    ]
