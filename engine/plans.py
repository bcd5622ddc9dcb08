"""The plan: what an operation decided, before (or instead of) it is written.

Every operation reads a ledger and produces a :class:`Plan`; applying the plan
(:func:`paysplit.apply.apply_plan`) gives the new ledger. A plan is a frozen
pydantic model whose JSON form is exactly what ``paysplit ... --json`` prints
(``docs/cli.md``, "The plan, as --json prints it"): amounts are two-place
strings, keys come in a fixed order, and nothing in it depends on the clock,
so the same input gives the same plan byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paysplit.ledger import Charge, Payment
from paysplit.money import Amount, Cents


def _is_none(value: object) -> bool:
    return value is None


class PlanPart(BaseModel):
    """Base of every plan model: frozen and strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BlockedReason(PlanPart):
    """Why a policy blocked the whole operation, or a guard refused a manual one (exit 3)."""

    reason: str
    clause: str | None = None
    """``FILE:LINE:COL`` of the clause that decided, or None for a core fact."""
    plugin: str | None = None


class PlannedSplit(PlanPart):
    """A split the plan adds: part of one payment to one charge (or installment + charge)."""

    id: str
    payment: str
    charge: str | None
    installment: str | None = None
    amount: Amount
    transfer: str | None = None
    """The income-transfer id, when the split moves credit posted before the operation."""
    reverses: str | None = Field(default=None, exclude_if=_is_none)
    """For a reversal (unallocate): the split it reverses. Shown only when set."""
    rule: str | None = Field(default=None, exclude=True)
    """The rule that made the split (kept on the ledger record; not printed)."""


class PlannedCredit(PlanPart):
    """A credit annotation a leftover action sets on a payment (004)."""

    payment: str
    amount: Amount
    """The leftover the annotation describes."""
    due_to: str
    memo: str
    provider: str | None
    office: str | None


class PlannedVoid(PlanPart):
    payment: str
    reason: str | None = None


class PlanWarning(PlanPart):
    message: str
    clause: str | None = None


class TraceEntry(PlanPart):
    """One candidate source and target considered, used or skipped, and why."""

    source: str | None = Field(default=None, exclude_if=_is_none)
    """The payment whose credit was considered; absent when no credit was involved."""
    target: str
    used: bool
    amount: Amount
    reason: str
    clause: str | None = None


class TransferLeg(PlanPart):
    target: str | None
    """None for the leg out of the payment's unearned credit."""
    amount: Amount


class Transfer(PlanPart):
    """An income transfer: the two legs Open Dental shows, netting to zero (002)."""

    id: str
    from_payment: str
    unearned_type: str
    legs: tuple[TransferLeg, ...]


class Plan(PlanPart):
    """What one operation does to a ledger."""

    operation: str
    rule: str | None = None
    preview: bool = False
    blocked: BlockedReason | None = None
    splits: tuple[PlannedSplit, ...] = ()
    credits: tuple[PlannedCredit, ...] = ()
    payments: tuple[Payment, ...] = ()
    """Payments the plan creates: refunds, and a posted (new) payment."""
    voids: tuple[PlannedVoid, ...] = ()
    unallocated: dict[str, Amount] = Field(default_factory=dict)
    """For every payment the plan touched: its unallocated amount after the plan."""
    warnings: tuple[PlanWarning, ...] = ()
    trace: tuple[TraceEntry, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    charges: tuple[Charge, ...] = ()
    """Charges the plan posts (``post-charge``)."""
    date: dt.date
    """The date the plan's new records carry (the run date; never the clock)."""

    # -- reading -------------------------------------------------------------
    @property
    def is_blocked(self) -> bool:
        return self.blocked is not None

    @property
    def is_empty(self) -> bool:
        """True when applying the plan would change nothing."""
        return not (self.splits or self.credits or self.payments or self.voids or self.charges)

    def unallocated_of(self, payment_id: str) -> Cents | None:
        return self.unallocated.get(payment_id)

    # -- writing -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The plan as ``--json`` prints it: plain JSON values, amounts as strings."""
        return self.model_dump(mode="json")

    def dumps(self) -> str:
        """The plan as one JSON text (stable: same plan, same bytes)."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)
