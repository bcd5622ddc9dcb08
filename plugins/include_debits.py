"""``include debits`` (004): debit codes (fees) are targets only when a rule says so.

This plugin declares the charge kind ``debit`` as opt-in, so every rule
without this clause leaves debits alone, as the billing system's default does.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.phrases import Arguments, Phrase, Vocabulary
from paysplit.policy import Scope


class IncludeDebits(Scope):
    admitted_kinds = frozenset({"debit"})


def _build(_arguments: Arguments) -> IncludeDebits:
    return IncludeDebits()


@hookimpl
def paysplit_vocabulary() -> Vocabulary:
    return Vocabulary(
        kinds={"debit": "A fee such as a returned-cheque fee (004's debit codes)"},
        opt_in_kinds=frozenset({"debit"}),
    )


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        Phrase(
            pattern="include debits",
            kind="scope",
            build=_build,
            summary="Charges of kind debit (fees) are targets too (004: Include Debits).",
            example="mode due patient, include debits",
        )
    ]
