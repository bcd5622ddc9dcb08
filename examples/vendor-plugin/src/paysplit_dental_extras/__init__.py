"""paysplit-dental-extras: dental policies that paysplit's built-in plugins do not have.

A complete third-party paysplit plugin. Installing the package is all it
takes: its ``pyproject.toml`` declares this module under the entry-point group
``paysplit``, and paysplit calls the hooks below once at start-up.

What it adds to the rule language:

``skip codes (D9986, D9987)`` (filter)
    never pay charges with these procedure codes automatically: a practice
    that bills missed- and cancelled-appointment fees (CDT D9986, D9987) does
    not want a patient's payment swallowed by them.
``only codes (D1110, D1120)`` (filter)
    the opposite: only charges with these codes are targets.
``no stale credit for collection 90 days`` (guard, in a rule or in settings)
    credit posted more than N days before the run date may not pay a charge
    that is at collection (``collection``, ``collection_agency``, or this
    plugin's ``disputed``): old credit is usually owed back to the patient
    or the payer, and a collection agency's balance must not be settled by it
    silently. Automatic rules skip such a charge (the trace says why); a
    manual allocation is refused (exit 3).

And to the vocabulary: the charge status ``disputed`` (a balance the patient
disputes, handled like a collection charge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from paysplit import hookimpl
from paysplit.ledger import Charge
from paysplit.phrases import Arguments, LedgerReader, Phrase, Vocabulary
from paysplit.policy import Filter, Guard, ProposedSplit, Refuse, Target, Verdict
from paysplit_dental_extras.csv_export import read_csv_export

__version__ = "1.0.0"

COLLECTION_STATUSES = frozenset({"collection", "collection_agency", "disputed"})
"""Statuses the stale-credit guard protects."""


def _codes(arguments: Arguments) -> frozenset[str]:
    codes = arguments["codes"]
    if isinstance(codes, tuple):
        return frozenset(str(code) for code in codes)
    return frozenset({str(codes)})


def _listed(codes: frozenset[str]) -> str:
    return ", ".join(sorted(codes))


@dataclass(frozen=True)
class SkipCodes(Filter):
    """``skip codes (...)``: charges with one of these codes are not targets."""

    codes: frozenset[str]

    def skip_reason(self, target: Target, payment: object) -> str | None:
        return None if target.installment is not None else self.charge_reason(target.charge)

    def charge_form(self) -> Callable[[Charge], str | None]:
        # The reason reads only the charge's code: batch runs may call it on the charge.
        return self.charge_reason

    def charge_predicate(self) -> Callable[[Charge], bool]:
        # A batch run without the trace asks only whether the charge is kept: no reason made.
        return self.keeps

    def charge_reason(self, charge: Charge) -> str | None:
        if charge.code in self.codes:
            return f"{charge.id} has code {charge.code}, which this rule never pays automatically"
        return None

    def keeps(self, charge: Charge) -> bool:
        return charge.code not in self.codes


@dataclass(frozen=True)
class OnlyCodes(Filter):
    """``only codes (...)``: only charges with one of these codes are targets."""

    codes: frozenset[str]

    def skip_reason(self, target: Target, payment: object) -> str | None:
        return None if target.installment is not None else self.charge_reason(target.charge)

    def charge_form(self) -> Callable[[Charge], str | None]:
        return self.charge_reason

    def charge_reason(self, charge: Charge) -> str | None:
        if charge.code not in self.codes:
            shown = charge.code or "no code"
            return f"{charge.id} has {shown}; this rule pays only {_listed(self.codes)}"
        return None


@dataclass(frozen=True)
class NoStaleCreditForCollection(Guard):
    """``no stale credit for collection N days``."""

    days: int

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        charge = split.target.charge
        if charge.status not in COLLECTION_STATUSES:
            return None
        age = (split.run_date - split.payment.date).days
        if age <= self.days:
            return None
        return Refuse(
            f"credit of {split.payment.id} is {age} days old (more than {self.days}) "
            f"and may not pay {charge.id}, which is at {charge.status.replace('_', ' ')}"
        )


def _skip_codes(arguments: Arguments) -> SkipCodes:
    return SkipCodes(_codes(arguments))


def _only_codes(arguments: Arguments) -> OnlyCodes:
    return OnlyCodes(_codes(arguments))


def _no_stale_credit(arguments: Arguments) -> NoStaleCreditForCollection:
    days = arguments["days"]
    return NoStaleCreditForCollection(days if isinstance(days, int) else int(str(days)))


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        Phrase(
            pattern="skip codes {codes:words}",
            kind="filter",
            build=_skip_codes,
            summary="Never pay charges with these procedure codes automatically "
            "(e.g. the missed-appointment fees D9986, D9987).",
            example="mode due patient, skip codes (D9986, D9987)",
        ),
        Phrase(
            pattern="only codes {codes:words}",
            kind="filter",
            build=_only_codes,
            summary="Pay only charges with these procedure codes.",
            example="oldest first, only codes (D1110, D1120)",
        ),
    ]


@hookimpl
def paysplit_guards() -> list[Phrase]:
    return [
        Phrase(
            pattern="no stale credit for collection {days:days}",
            kind="guard",
            build=_no_stale_credit,
            summary="Credit older than N days may not pay a charge at collection "
            "(collection, collection_agency, disputed).",
            example="no stale credit for collection 90 days",
            where="both",
        )
    ]


@hookimpl
def paysplit_vocabulary() -> Vocabulary:
    return Vocabulary(
        statuses={"disputed": "The patient disputes the balance; handled like collection"}
    )


@hookimpl
def paysplit_ledger_readers() -> list[LedgerReader]:
    return [
        LedgerReader(
            name="dental-csv",
            summary="The practice system's flat CSV export: one row per patient, "
            "charge or payment.",
            read=read_csv_export,
        )
    ]
