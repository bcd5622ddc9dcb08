"""``include dependents`` (004): a guarantor's payment may pay their dependents' charges.

For a payment, targets include the charges of every patient who names the
payment's patient as guarantor. For pooled credit, a dependent's charge may
also draw the credit its guarantor paid.
"""

from __future__ import annotations

from collections.abc import Iterable

from paysplit import hookimpl
from paysplit.figures import dependents_of, guarantor_of
from paysplit.ledger import Account
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Scope


class IncludeDependents(Scope):
    def target_patients(self, account: Account, patient: str) -> Iterable[str]:
        return dependents_of(account, patient)

    def credit_patients(self, account: Account, patient: str) -> Iterable[str]:
        guarantor = guarantor_of(account, patient)
        return () if guarantor is None else (guarantor,)


def _build(_arguments: Arguments) -> IncludeDependents:
    return IncludeDependents()


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        Phrase(
            pattern="include dependents",
            kind="scope",
            build=_build,
            summary="Charges of the patient's dependents are targets too "
            "(004: Include Dependent Transactions).",
            example="mode due patient, include dependents",
        )
    ]
