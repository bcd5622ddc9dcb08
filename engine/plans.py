"""The plan: what an operation decided, before (or instead of) it is written.

Every operation reads a ledger and produces a :class:`Plan`; applying the plan
(:func:`paysplit.apply.apply_plan`) gives the new ledger. A plan is a frozen
pydantic model whose JSON form is exactly what ``paysplit ... --json`` prints
(``docs/cli.md``, "The plan, as --json prints it"): amounts are two-place
strings, keys come in a fixed order, and nothing in it depends on the clock,
so the same input gives the same plan byte for byte.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from paysplit.ledger import Charge, Payment
from paysplit.money import Amount, Cents, format_cents
from paysplit.trace_json import entries


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


# --- the plan as the allocation core builds it --------------------------------------
SplitRow = tuple[str, str, str, str | None, Cents, str | None, str]
"""A split being made: (id, payment, charge, installment, amount, transfer, unearned type).

The unearned type is the one the transfer (when there is one) is booked from."""

TraceRow = tuple[str | None, str, bool, Cents, str, str | None]
"""A trace entry being made: (source, target, used, amount, reason, clause)."""


class PlanDraft:
    """A plan as the allocation core makes it: rows of plain tuples, no model yet.

    The core records every split and trace entry as a tuple (a pydantic model per
    charge considered would cost more than deciding); the :class:`Plan` is made
    from it once, at the edge: :meth:`to_plan` for callers that want the model,
    :meth:`to_json` for callers that only write it (``paysplit batch``). Both say
    the same thing: ``draft.to_json() == draft.to_plan().model_dump_json().encode()``,
    byte for byte (``tests/test_fast_path.py``).

    The fast path gives its trace as JSON text instead (:attr:`trace_json`, the
    entries joined by commas, :mod:`paysplit.trace_json`): written as it is, read
    back into rows only when someone asks for :attr:`trace`. The trace is held one
    way at a time, so the two can never say different things: reading the rows
    turns the text into rows for good, and setting either replaces the other.
    """

    __slots__ = (
        "_trace",
        "_trace_json",
        "blocked",
        "credits",
        "date",
        "operation",
        "rule",
        "splits",
        "unallocated",
        "warnings",
    )

    def __init__(
        self,
        *,
        operation: str,
        rule: str | None,
        blocked: BlockedReason | None,
        splits: list[SplitRow],
        credits: tuple[PlannedCredit, ...],
        unallocated: dict[str, Cents],
        warnings: tuple[PlanWarning, ...],
        trace: list[TraceRow] | None = None,
        date: dt.date,
        trace_json: str | None = None,
    ) -> None:
        self.operation = operation
        self.rule = rule
        self.blocked = blocked
        self.splits = splits
        """Empty when blocked (a blocked plan makes no split and no transfer)."""
        self.credits = credits
        self.unallocated = unallocated
        self.warnings = warnings
        if trace is not None and trace_json is not None:
            raise ValueError("a plan draft's trace is given as rows or as text, not both")
        self._trace = trace if trace is not None or trace_json is not None else []
        self._trace_json = trace_json
        self.date = date

    @property
    def trace(self) -> list[TraceRow]:
        """The trace as rows; a trace given as text is read into rows, which hold it from
        then on (changing them changes the plan)."""
        if self._trace is None:
            self._trace = entries(self._trace_json or "")
            self._trace_json = None
        return self._trace

    @trace.setter
    def trace(self, rows: list[TraceRow]) -> None:
        self._trace = rows
        self._trace_json = None

    @property
    def trace_json(self) -> str | None:
        """The trace as JSON text (the entries joined by commas), or None while it is held
        as rows."""
        return self._trace_json

    @trace_json.setter
    def trace_json(self, text: str) -> None:
        self._trace_json = text
        self._trace = None

    @property
    def is_empty(self) -> bool:
        """True when applying the plan would change nothing (as :attr:`Plan.is_empty`)."""
        return not (self.splits or self.credits)

    def to_plan(self) -> Plan:
        """The plan model (validated, as every plan is)."""
        rule = self.rule
        splits = tuple(
            PlannedSplit(
                id=split_id,
                payment=payment,
                charge=charge,
                installment=installment,
                amount=amount,
                transfer=transfer,
                rule=rule,
            )
            for split_id, payment, charge, installment, amount, transfer, _ in self.splits
        )
        transfers = tuple(
            Transfer(
                id=transfer,
                from_payment=payment,
                unearned_type=unearned_type,
                legs=(
                    TransferLeg(target=None, amount=-amount),
                    TransferLeg(target=installment or charge, amount=amount),
                ),
            )
            for _, payment, charge, installment, amount, transfer, unearned_type in self.splits
            if transfer is not None
        )
        trace = tuple(
            TraceEntry(
                source=source, target=target, used=used, amount=amount, reason=reason, clause=clause
            )
            for source, target, used, amount, reason, clause in self.trace
        )
        return Plan(
            operation=self.operation,
            rule=rule,
            blocked=self.blocked,
            splits=splits,
            credits=self.credits,
            unallocated=self.unallocated,
            warnings=self.warnings,
            trace=trace,
            transfers=transfers,
            date=self.date,
        )

    def to_json(self) -> bytes:
        """The plan's compact JSON, exactly the bytes of ``to_plan().model_dump_json()``.

        Built as plain dicts in the models' field order and serialised by
        pydantic-core (the same serialiser, the same escaping); a trace given as
        :attr:`trace_json` goes in as it is.
        """
        money = format_cents
        splits: list[dict[str, Any]] = []
        transfers: list[dict[str, Any]] = []
        for split_id, payment, charge, installment, amount, transfer, unearned_type in self.splits:
            shown = money(amount)
            splits.append(
                {
                    "id": split_id,
                    "payment": payment,
                    "charge": charge,
                    "installment": installment,
                    "amount": shown,
                    "transfer": transfer,
                }
            )
            if transfer is not None:
                transfers.append(
                    {
                        "id": transfer,
                        "from_payment": payment,
                        "unearned_type": unearned_type,
                        "legs": [
                            {"target": None, "amount": money(-amount)},
                            {"target": installment or charge, "amount": shown},
                        ],
                    }
                )
        head: dict[str, Any] = {
            "operation": self.operation,
            "rule": self.rule,
            "preview": False,
            "blocked": self.blocked,
            "splits": splits,
            "credits": self.credits,
            "payments": [],
            "voids": [],
            "unallocated": {key: money(value) for key, value in self.unallocated.items()},
            "warnings": self.warnings,
        }
        if self.trace_json is not None:
            # Text UTF-8 cannot hold (a lone surrogate in a vendor's reason) goes the
            # rows' way below, where pydantic-core refuses it as it does in any plan.
            with contextlib.suppress(UnicodeEncodeError):
                entries_text = self.trace_json.encode()
                tail = {"transfers": transfers, "charges": [], "date": self.date}
                return b"".join(
                    (to_json(head)[:-1], b',"trace":[', entries_text, b"],", to_json(tail)[1:])
                )
        trace: list[dict[str, Any]] = []
        append = trace.append
        for source, target, used, amount, reason, clause in self.trace:
            if source is None:
                append(
                    {
                        "target": target,
                        "used": used,
                        "amount": "0.00" if amount == 0 else money(amount),
                        "reason": reason,
                        "clause": clause,
                    }
                )
            else:
                append(
                    {
                        "source": source,
                        "target": target,
                        "used": used,
                        "amount": "0.00" if amount == 0 else money(amount),
                        "reason": reason,
                        "clause": clause,
                    }
                )
        head["trace"] = trace  # (in the models' field order, after the warnings)
        head["transfers"] = transfers
        head["charges"] = []
        head["date"] = self.date
        return to_json(head)
