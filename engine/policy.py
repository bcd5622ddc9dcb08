"""What a clause *does*: the base classes a phrase's ``build`` returns, and what they see.

Each clause kind of :mod:`paysplit.phrases` has one base class here. A plugin
subclasses it and overrides only the methods it needs; every method has a
neutral default. The allocation core calls these methods with read-only
views (frozen dataclasses and ledger models) and checks what comes back, so a
plugin can neither change the ledger nor hand the engine an impossible split.

Reasons and messages are shown to practice staff as they are: write them as a
billing user would say them ("credit of DR2 cannot pay DR1's charge C1").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Charge, CreditNote, Installment, Payment, PaymentPlan
from paysplit.money import Cents


# --- what clauses are shown -------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """A candidate to pay: a charge, or one installment of a plan (with the plan)."""

    charge: Charge
    """The charge itself; for an installment, the plan's first charge still owing."""
    installment: Installment | None
    plan: PaymentPlan | None
    balance: Cents
    patient_balance: Cents
    allocatable: Cents
    """What the credit in question may still put on this target."""
    age: int
    """Days from the service (or due) date to the run date."""
    position: int
    """Place in the ledger: the tie-break of every order."""

    @property
    def id(self) -> str:
        return self.installment.id if self.installment is not None else self.charge.id


@dataclass(frozen=True, slots=True)
class Operation:
    """A whole operation, as an operation guard sees it before anything is decided."""

    name: str
    """``apply``, ``allocate``, ``refund``, ``unallocate``, ``void``, ``post-charge``,
    ``post-payment``."""
    account: Account
    figures: AccountFigures
    run_date: dt.date
    payment: Payment | None
    """The payment being applied or allocated, when there is one."""
    patients: frozenset[str]
    """Patients whose charges the operation may pay."""
    charges: tuple[Charge, ...]
    """Charges the operation may pay (after any ``--charges`` selection)."""
    manual: bool


@dataclass(frozen=True, slots=True)
class ProposedSplit:
    """One split the engine is about to make, as a split guard sees it."""

    payment: Payment
    target: Target
    amount: Cents
    credit_left: Cents
    """What this payment had left to give before this split."""
    manual: bool
    run_date: dt.date
    """The date the operation runs as of (``--as-of``, else the ledger's ``as_of``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an automatic allocation decided, before it becomes a plan."""

    payment: Payment | None
    credit_before: Cents
    credit_left: Cents
    splits: tuple[tuple[str, str, Cents], ...]
    """(payment id, target id, amount) in the order made."""
    unpaid: tuple[tuple[Target, Cents], ...]
    """Targets that passed every filter and still owe something, with what they owe."""


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """What a credit source is asked for: the operation's payment or posted charge."""

    account: Account
    figures: AccountFigures
    run_date: dt.date
    payment: Payment | None
    charge: Charge | None
    """For an ``on charge added`` rule: the charge just posted."""
    default_unearned_type: str
    """The unearned type of a payment that names none (settings, else ``prepayment``)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """A split guard's verdict: skip the target (automatic) or refuse (manual, exit 3)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Warn:
    """A split guard's verdict: go ahead, and put this warning on the plan."""

    message: str


Verdict = Refuse | Warn


# --- the base classes -------------------------------------------------------
class Clause:
    """Base of every clause implementation."""


class Scope(Clause):
    """Widens which charges a rule may pay and whose pooled credit may pay them."""

    admitted_kinds: frozenset[str] = frozenset()
    """Opt-in charge kinds (see ``Vocabulary.opt_in_kinds``) this clause makes targets."""

    def target_patients(self, account: Account, patient: str) -> Iterable[str]:
        """Patients, besides ``patient``, whose charges a payment of ``patient`` may pay."""
        return ()

    def credit_patients(self, account: Account, patient: str) -> Iterable[str]:
        """Patients, besides ``patient``, whose pooled credit may pay ``patient``'s charges."""
        return ()


class Filter(Clause):
    """Keeps a target out of a rule."""

    def skip_reason(self, target: Target, payment: Payment | None) -> str | None:
        """None to keep the target; otherwise why it is skipped."""
        return None

    def charge_form(self) -> Callable[[Charge], str | None] | None:
        """Optional (default None). Asked once per rule, when a run prepares it.

        Return a function of a charge that gives exactly what :meth:`skip_reason`
        gives for a charge target (not an installment) with that charge, whatever
        the target's balance, allocatable amount, age and position, and whatever the
        payment: the promise that the filter reads only the charge's own fields.
        Rules whose every clause has such a form run on the charges themselves,
        without a :class:`Target` view per charge (``paysplit batch``'s fast path,
        ``docs/performance.md``). Return None when the reason depends on anything else.
        """
        return None

    def charge_predicate(self) -> Callable[[Charge], bool] | None:
        """Optional (default None); only with :meth:`charge_form`. Asked once per rule.

        Return a function of a charge that gives True exactly when the charge form gives
        None (the filter keeps the charge) and False when it gives a reason. Runs that
        never say why a charge was skipped (``paysplit batch --trace none``) call it
        instead of the charge form: no reason text is made for the charges the filter
        skips. None: they call the charge form and drop its reason. Any other return
        value than True or False sends the account to the general path.
        """
        return None


class Order(Clause):
    """Orders targets; ties always break by ledger position."""

    def sort_key(self, target: Target) -> Any:
        raise NotImplementedError

    def charge_form(self) -> Callable[[Charge], Any] | None:
        """Optional (default None). Asked once per rule, when a run prepares it.

        Return a function of a charge that gives exactly what :meth:`sort_key` gives
        for a charge target with that charge, whatever its balance, age and position
        (the order reads only the charge's own fields); None otherwise. See
        :meth:`Filter.charge_form`.
        """
        return None


class Preference(Clause):
    """Puts matching sources and targets first without forbidding the rest (002)."""

    label: str = ""
    """What matches, for the trace: ``provider``, ``office``, ``patient``."""

    def prefers(self, payment: Payment, target: Target) -> bool:
        return False


class Source(Clause):
    """Where credit comes from (a ``from`` variant)."""

    pooled: bool = True
    """True when the credit was posted before the operation: its splits are transfers."""

    def credit(self, request: SourceRequest) -> Sequence[Payment]:
        """The payments to draw from, in the order to draw them."""
        return ()

    def skip_reason(self, target: Target, request: SourceRequest) -> str | None:
        """None when this credit may pay the target; otherwise why not."""
        return None


class Targets(Clause):
    """Which charges are candidates before any filter (a ``to`` variant)."""

    def candidates(self, account: Account, patients: frozenset[str]) -> Sequence[Charge]:
        return ()


class Distribution(Clause):
    """Decides how much each ordered target gets, instead of oldest-first filling."""

    def propose(self, credit: Cents, targets: Sequence[Target]) -> Sequence[tuple[str, Cents]]:
        """(target id, amount) pairs; the engine refuses any that over-draw or are unknown."""
        return ()


class Guard(Clause):
    """A check of a whole operation, of each proposed split, or of the outcome."""

    speaks_only_beyond_limits: bool = False
    """Optional declaration (default False): True promises that :meth:`check_split`
    returns None for every split whose ``amount`` is at most both its ``credit_left``
    and its ``target.allocatable``, so the guard speaks only about over-allocating a
    payment or over-paying a target. A rule's automatic splits (and the probes the
    core makes for the trace) never exceed either, so the core does not call such a
    guard's ``check_split`` for them; manual allocation always calls it. Leave it
    False unless that holds for every split."""

    def check_operation(self, operation: Operation) -> str | None:
        """None to go ahead; otherwise the reason the operation is blocked (exit 3)."""
        return None

    def check_split(self, split: ProposedSplit) -> Verdict | None:
        """None to allow the split, Refuse to skip/refuse it, Warn to allow it with a warning."""
        return None

    def check_outcome(self, outcome: Outcome) -> str | None:
        """None to keep what was decided; otherwise why the payment stays unallocated."""
        return None

    def charge_form(self) -> Callable[[Payment, Charge], Verdict | None] | None:
        """Optional (default None). Asked once per rule, when a run prepares it.

        Return a function of a payment and a charge that gives exactly what
        :meth:`check_split` gives for every automatic split (``manual`` False) of
        that payment to a charge target with that charge, whatever the amount, the
        credit left, the target's balance and the run date; None otherwise. A guard
        that speaks only of the payment and the charge (``no cross-doctor``) can; one
        that weighs amounts cannot. See :meth:`Filter.charge_form`.
        """
        return None


class LeftoverHandler(Clause):
    """What happens to credit a rule leaves over (only called when it is above zero)."""

    def leftover(self, payment: Payment, amount: Cents) -> CreditNote | None:
        return None


BASE_FOR_KIND: dict[str, type[Clause]] = {
    "scope": Scope,
    "filter": Filter,
    "order": Order,
    "preference": Preference,
    "source": Source,
    "target": Targets,
    "distribution": Distribution,
    "guard": Guard,
    "leftover": LeftoverHandler,
}
"""The class a phrase's ``build`` must return an instance of, by the phrase's kind."""
