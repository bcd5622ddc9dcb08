"""The invariants of ``docs/semantics.md`` that a ledger shows by itself.

A ledger that loads (:mod:`paysplit.ledger_io` already checked its shape, ids
and references) may still be inconsistent: a split of zero, a reversal larger
than the split it reverses, refunds of more than a payment's amount. This module
finds those, each as a :class:`~paysplit.errors.Problem` with the JSON path of
the record at fault. ``paysplit validate`` exits 1 when there are any, and
tests call :func:`check_invariants` after every operation.

:func:`check_history` checks the audit trail: every record the ledger's
``history`` names is still there (nothing paysplit recorded was deleted, a
void payment is still void), no record is recorded twice, and every split
added after paysplit started recording an account is named by exactly one
entry. ``paysplit validate`` runs both (``check_invariants(..., history=True)``).

Two figures may legitimately go negative when a rule file's settings allow it
(plugin settings that warn about or allow over-allocating a payment or
over-paying a charge, 001 and 002). A ledger does not say which settings
produced it, so by default both are accepted here (reports flag them
instead); a caller that knows the settings were ``block`` passes
``allow_negative_unallocated=False`` or ``allow_overpaid_charges=False`` and
gets them reported as problems.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from paysplit.errors import Problem
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, HistoryEntry, Ledger, Payment, Split
from paysplit.money import Cents, format_cents

__all__ = ["OPERATIONS", "check_history", "check_invariants"]


def check_invariants(
    ledger: Ledger,
    *,
    allow_negative_unallocated: bool = True,
    allow_overpaid_charges: bool = True,
    history: bool = False,
) -> list[Problem]:
    """Every broken invariant of the ledger, in document order (empty when it is sound).

    With ``history=True`` (``paysplit validate``) the problems of :func:`check_history` follow.
    """
    problems: list[Problem] = []
    for index, account in enumerate(ledger.accounts):
        check = _AccountInvariants(account, f"accounts[{index}]", problems)
        if not allow_overpaid_charges:
            check.overpaid()
        check.payments(allow_negative_unallocated)
        check.splits()
    if history:
        problems.extend(check_history(ledger))
    return problems


OPERATIONS = frozenset(
    {"apply", "allocate", "refund", "unallocate", "void", "post-charge", "post-payment"}
)
"""The operations whose plans paysplit records in a ledger's history."""


@dataclass(frozen=True)
class _Where:
    """A record of the ledger: its account and its JSON path."""

    account: int
    path: str


class _History:
    """The audit trail of one ledger against the records it names."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.problems: list[Problem] = []
        self.splits: dict[str, tuple[_Where, Split]] = {}
        self.payments: dict[str, tuple[_Where, Payment]] = {}
        self.charges: dict[str, _Where] = {}
        for a, account in enumerate(ledger.accounts):
            for n, split in enumerate(account.splits):
                self.splits.setdefault(split.id, (_Where(a, f"accounts[{a}].splits[{n}]"), split))
            for n, payment in enumerate(account.payments):
                where = _Where(a, f"accounts[{a}].payments[{n}]")
                self.payments.setdefault(payment.id, (where, payment))
            for n, charge in enumerate(account.charges):
                self.charges.setdefault(charge.id, _Where(a, f"accounts[{a}].charges[{n}]"))
        self.recorded: dict[tuple[str, str], str] = {}
        """(kind, id) -> the entry that first recorded it."""

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def once(self, kind: str, record: str, at: str, entry: str) -> bool:
        """Note that ``entry`` records ``record``; False (and a problem) if another did."""
        first = self.recorded.setdefault((kind, record), entry)
        if first != entry:
            self.problem(at, f"{kind} {record} is already recorded by {first}")
            return False
        return True

    def entry(self, index: int, entry: HistoryEntry) -> None:
        at = f"history[{index}]"
        if entry.operation not in OPERATIONS:
            known = ", ".join(sorted(OPERATIONS))
            self.problem(
                f"{at}.operation",
                f"{entry.operation!r} is not an operation paysplit records ({known})",
            )
        try:
            dt.datetime.fromisoformat(entry.applied_at)
        except ValueError:
            self.problem(
                f"{at}.applied_at",
                f"{entry.applied_at!r} is not a date and time (YYYY-MM-DDTHH:MM:SS)",
            )
        if entry.operation == "void" and (not entry.voids or entry.splits or entry.payments):
            self.problem(at, "a void entry names the payment it voided, and nothing else")
        self.entry_splits(at, entry)
        self.entry_payments(at, entry)
        for n, payment_id in enumerate(entry.voids):
            place = f"{at}.voids[{n}]"
            found = self.payments.get(payment_id)
            if found is None:
                self.problem(
                    place,
                    f"payment {payment_id}, voided here, is not in the ledger: a void keeps "
                    "the payment (and its splits and refunds), it never deletes them",
                )
            elif not found[1].void:
                self.problem(
                    place, f"payment {payment_id} was voided here but is not void ({found[0].path})"
                )
            else:
                self.once("void of payment", payment_id, place, at)
        for n, charge_id in enumerate(entry.charges):
            place = f"{at}.charges[{n}]"
            if charge_id not in self.charges:
                self.problem(place, f"charge {charge_id}, posted here, is not in the ledger")
            else:
                self.once("charge", charge_id, place, at)
        for n, payment_id in enumerate(entry.credits):
            place = f"{at}.credits[{n}]"
            found = self.payments.get(payment_id)
            if found is None:
                self.problem(
                    place, f"payment {payment_id}, given a credit here, is not in the ledger"
                )
            elif found[1].credit is None:
                self.problem(
                    place,
                    f"payment {payment_id} was given a credit annotation here, but has none "
                    f"({found[0].path})",
                )

    def entry_splits(self, at: str, entry: HistoryEntry) -> None:
        for n, split_id in enumerate(entry.splits):
            place = f"{at}.splits[{n}]"
            found = self.splits.get(split_id)
            if found is None:
                self.problem(
                    place,
                    f"split {split_id}, made here, is not in the ledger: nothing paysplit "
                    "recorded is ever deleted (unallocate adds a reversal instead)",
                )
                continue
            where, split = found
            if not self.once("split", split_id, place, at):
                continue
            reversal = split.amount < 0 and split.reverses is not None
            if entry.operation == "unallocate" and not reversal:
                self.problem(
                    place,
                    f"split {split_id} is not a reversal, but this unallocate entry made it "
                    f"({where.path})",
                )
            elif entry.operation in OPERATIONS - {"unallocate"} and split.amount < 0:
                self.problem(
                    place,
                    f"split {split_id} is negative, but only unallocate makes reversals "
                    f"({where.path}; this entry is {entry.operation})",
                )

    def entry_payments(self, at: str, entry: HistoryEntry) -> None:
        for n, payment_id in enumerate(entry.payments):
            place = f"{at}.payments[{n}]"
            found = self.payments.get(payment_id)
            if found is None:
                self.problem(
                    place,
                    f"payment {payment_id}, made here, is not in the ledger: refunds and "
                    "payments paysplit recorded are never deleted (void one instead)",
                )
                continue
            if not self.once("payment", payment_id, place, at):
                continue
            payment = found[1]
            if entry.operation == "refund":
                if payment.type != "refund":
                    self.problem(
                        place,
                        f"payment {payment_id} is not a refund, but this refund entry made it "
                        f"({found[0].path})",
                    )
                elif payment.refunds is not None and payment.refunds not in self.payments:
                    self.problem(
                        place,
                        f"refund {payment_id} refunds {payment.refunds}, which is not in the "
                        "ledger: a refund never deletes the payment it refunds",
                    )

    def unrecorded_splits(self) -> None:
        """Once paysplit has recorded a split of an account, every later split of the account
        is one it made, and is named by exactly one entry."""
        named = {split_id for kind, split_id in self.recorded if kind == "split"}
        for a, account in enumerate(self.ledger.accounts):
            started = False
            for n, split in enumerate(account.splits):
                if split.id in named:
                    started = True
                elif started:
                    self.problem(
                        f"accounts[{a}].splits[{n}]",
                        f"split {split.id} comes after splits that paysplit recorded, but no "
                        "history entry names it: it was added by another program, or its "
                        "history entry was removed",
                    )


def check_history(ledger: Ledger) -> list[Problem]:
    """Problems of the ledger's ``history`` (empty when the audit trail is consistent).

    * every split, payment, charge, void and credit an entry names is in the ledger: nothing
      paysplit recorded was deleted; a voided payment is still there and still void, a
      refund's payment is still there;
    * no record is recorded by two entries (or twice by one);
    * once paysplit has recorded a split of an account, every later split of that account
      is named by an entry (paysplit appends what it makes; splits before the first recorded
      one are the ledger's opening data);
    * entries are operations paysplit records, with a readable ``applied_at``, and what they
      name fits the operation (only unallocate makes reversal splits, a refund makes refunds).
    """
    history = _History(ledger)
    for index, entry in enumerate(ledger.history):
        history.entry(index, entry)
    history.unrecorded_splits()
    return history.problems


class _AccountInvariants:
    def __init__(self, account: Account, at: str, problems: list[Problem]) -> None:
        self.account = account
        self.at = at
        self.problems = problems
        self.figures = AccountFigures.of(account)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(f"{self.at}.{path}", message))

    def overpaid(self) -> None:
        """Charges and installments paid beyond what they owe (only when no setting allowed it)."""
        for index, charge in enumerate(self.account.charges):
            balance = self.figures.balance(charge)
            if balance < 0:
                self.problem(
                    f"charges[{index}]",
                    f"{charge.id} is paid {format_cents(-balance)} more than it owes "
                    f"(balance {format_cents(balance)})",
                )
        for p_index, plan in enumerate(self.account.plans):
            for i_index, installment in enumerate(plan.installments):
                balance = self.figures.installment_balance(installment)
                if balance < 0:
                    self.problem(
                        f"plans[{p_index}].installments[{i_index}]",
                        f"installment {installment.id} is paid {format_cents(-balance)} more "
                        f"than its amount {format_cents(installment.amount)}",
                    )

    def payments(self, allow_negative_unallocated: bool) -> None:
        """allocated + refunded + unallocated = amount; refunds never exceed the amount.

        A refund is checked, when it is made, against what the payment then had unallocated;
        an allocation made later may take the payment below zero when a setting allows it
        (``negative unallocated warn|allow``). The ledger does not say in which order they
        came, so the refunds are held only to the payment's amount (no refund can ever pass
        that), and a negative unallocated amount, refunds or not, is the setting's business:
        a problem only with ``allow_negative_unallocated=False``.
        """
        figures = self.figures
        for index, payment in enumerate(self.account.payments):
            if payment.void or payment.type == "refund":
                continue
            allocated = figures.allocated(payment)
            refunded = figures.refunded(payment)
            unallocated = figures.unallocated(payment)
            at = f"payments[{index}]"
            if allocated + refunded + unallocated != payment.amount:
                self.problem(
                    at,
                    f"{payment.id}: allocated {format_cents(allocated)} + refunded "
                    f"{format_cents(refunded)} + unallocated {format_cents(unallocated)} "
                    f"is not its amount {format_cents(payment.amount)}",
                )
            if refunded > payment.amount:
                self.problem(
                    at,
                    f"{payment.id} is refunded {format_cents(refunded)}, more than its amount "
                    f"{format_cents(payment.amount)}",
                )
            elif unallocated < 0 and not allow_negative_unallocated:
                taken = f"{format_cents(allocated)} allocated"
                if refunded:
                    taken += f" and {format_cents(refunded)} refunded"
                self.problem(
                    at,
                    f"{payment.id} has {taken}, more than its amount "
                    f"{format_cents(payment.amount)} (unallocated {format_cents(unallocated)})",
                )

    def splits(self) -> None:
        """No zero split; a negative split only reverses an earlier one, never beyond it;
        each transfer id moves the credit of one payment through one split."""
        payments = {p.id: p for p in self.account.payments}
        earlier: dict[str, Split] = {}
        reversed_so_far: defaultdict[str, Cents] = defaultdict(int)
        transfer_payment: dict[str, str] = {}
        transfer_split: dict[str, str] = {}
        for index, split in enumerate(self.account.splits):
            at = f"splits[{index}]"
            if split.amount == 0:
                self.problem(f"{at}.amount", f"split {split.id} moves 0.00; a split moves money")
            elif split.amount < 0:
                self._reversal(split, at, earlier, reversed_so_far)
            elif split.reverses is not None:
                self.problem(
                    f"{at}.amount",
                    f"split {split.id} reverses {split.reverses} but is positive "
                    f"({format_cents(split.amount)}); a reversal has a negative amount",
                )
            payment = payments.get(split.payment)
            if payment is not None and payment.type == "refund":
                self.problem(
                    f"{at}.payment",
                    f"split {split.id} allocates refund {payment.id}; a refund is money paid "
                    "back and pays no charge",
                )
            if split.transfer is not None:
                owner = transfer_payment.setdefault(split.transfer, split.payment)
                if owner != split.payment:
                    self.problem(
                        f"{at}.transfer",
                        f"transfer {split.transfer} moves credit of {owner} and of "
                        f"{split.payment}; a transfer moves the credit of one payment",
                    )
                if split.amount > 0:
                    first = transfer_split.setdefault(split.transfer, split.id)
                    if first != split.id:
                        self.problem(
                            f"{at}.transfer",
                            f"transfer {split.transfer} is already split {first}'s; every "
                            "split that moves posted credit has a transfer id of its own",
                        )
            earlier.setdefault(split.id, split)

    def _reversal(
        self,
        split: Split,
        at: str,
        earlier: dict[str, Split],
        reversed_so_far: defaultdict[str, Cents],
    ) -> None:
        if split.reverses is None:
            self.problem(
                f"{at}.amount",
                f"split {split.id} is negative ({format_cents(split.amount)}) but reverses no "
                "split; only a reversal (unallocate, void) is negative",
            )
            return
        original = earlier.get(split.reverses)
        if original is None:
            self.problem(
                f"{at}.reverses",
                f"split {split.id} reverses {split.reverses}, which does not come before it "
                "in the ledger",
            )
        elif original.amount <= 0:
            self.problem(
                f"{at}.reverses",
                f"split {split.id} reverses {original.id}, which is itself a reversal",
            )
        elif original.payment != split.payment:
            self.problem(
                f"{at}.payment",
                f"split {split.id} reverses {original.id} of payment {original.payment} but "
                f"names payment {split.payment}; the money returns to the payment it came from",
            )
        elif (original.charge, original.installment) != (split.charge, split.installment):
            self.problem(
                f"{at}.charge",
                f"split {split.id} reverses {original.id}, which paid "
                f"{_target(original)}, but names {_target(split)}",
            )
        else:
            reversed_so_far[original.id] += -split.amount
            total = reversed_so_far[original.id]
            if total > original.amount:
                self.problem(
                    f"{at}.amount",
                    f"reversals of split {original.id} add up to {format_cents(total)}, more "
                    f"than the {format_cents(original.amount)} it moved",
                )


def _target(split: Split) -> str:
    if split.installment is not None:
        return f"installment {split.installment} (charge {split.charge})"
    return f"charge {split.charge}"
