"""The invariants of ``docs/semantics.md`` that a ledger shows by itself.

A ledger that loads (:mod:`paysplit.ledger_io` already checked its shape, ids
and references) may still be inconsistent: a split of zero, a reversal larger
than the split it reverses, refunds of more than a payment had. This module
finds those, each as a :class:`~paysplit.errors.Problem` with the JSON path of
the record at fault. ``paysplit validate`` exits 1 when there are any, and
tests call :func:`check_invariants` after every operation.

Two figures may legitimately go negative when a rule file's settings allow it
(plugin settings that warn about or allow over-allocating a payment or
over-paying a charge, 001 and 002). A ledger does not say which settings
produced it, so by default both are accepted here (reports flag them
instead); a caller that knows the settings were ``block`` passes
``allow_negative_unallocated=False`` or ``allow_overpaid_charges=False`` and
gets them reported as problems.
"""

from __future__ import annotations

from collections import defaultdict

from paysplit.errors import Problem
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Ledger, Split
from paysplit.money import Cents, format_cents

__all__ = ["check_invariants"]


def check_invariants(
    ledger: Ledger,
    *,
    allow_negative_unallocated: bool = True,
    allow_overpaid_charges: bool = True,
) -> list[Problem]:
    """Every broken invariant of the ledger, in document order (empty when it is sound)."""
    problems: list[Problem] = []
    for index, account in enumerate(ledger.accounts):
        check = _AccountInvariants(account, f"accounts[{index}]", problems)
        if not allow_overpaid_charges:
            check.overpaid()
        check.payments(allow_negative_unallocated)
        check.splits()
    return problems


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
        """allocated + refunded + unallocated = amount; refunds never exceed what was left."""
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
            if refunded > 0 and unallocated < 0:
                had = max(0, payment.amount - allocated)
                self.problem(
                    at,
                    f"{payment.id} is refunded {format_cents(refunded)}, more than the "
                    f"{format_cents(had)} it had unallocated",
                )
            elif unallocated < 0 and not allow_negative_unallocated:
                self.problem(
                    at,
                    f"{payment.id} has {format_cents(allocated)} allocated, more than its amount "
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
