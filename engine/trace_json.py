"""The trace as JSON text, made from pieces escaped once (what ``paysplit batch`` writes).

A traced plan line is mostly its trace: a sentence for every charge a payment
did not pay. Made as rows and then serialised, each entry is a tuple, a dict
and a pass of the serialiser over its text; most of that text is the same from
entry to entry (a charge's id in every payment's trace, the same filter reason
for every charge of one status, the same clause). The fast path
(:mod:`paysplit.rule_kernel`) instead writes each entry as JSON text directly,
from pieces it escaped once per account or once per worker. This module owns
those pieces, so the text of an entry is written in one place (a filter's reasons
are quoted once per worker while they keep coming back, see :class:`Endings`):

- :func:`quoted` is a JSON string exactly as pydantic-core writes it (the same
  escaping; ``tests/test_trace_json.py`` holds it to that over arbitrary text);
- an entry that took nothing is ``TARGET + quoted(target) + ending``, or
  ``SOURCE + quoted(source) + TO_TARGET + quoted(target) + ending``, where the
  ending (``NOT_USED``, the reason, ``CLAUSE``, the clause, ``}``) comes from
  :func:`ending`, or from :class:`Endings`, which keeps those of a clause's
  reasons already seen; a split's entry is :func:`used_entry`;
- :func:`entries` reads the text back as rows, for a caller that wants the
  :class:`~paysplit.plans.Plan` model.

Escaping is per character, so the quoted form of ``a + b`` is ``quoted(a)[:-1] +
quoted(b)[1:]``: the fast path quotes a charge's id once and its reasons' ends
once, and never quotes the sentence they make.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable

from paysplit.money import Cents, parse_amount

__all__ = [
    "CLAUSE",
    "NOT_USED",
    "SOURCE",
    "TARGET",
    "TO_TARGET",
    "Endings",
    "ending",
    "entries",
    "quoted",
    "used_entry",
]

quoted: Callable[[str], str] = json.encoder.encode_basestring
"""A JSON string, quotes included, escaped as pydantic-core escapes it (``"`` and ``\\``,
control characters; nothing else): the ``json`` module's C escaper where Python has it."""

TARGET = '{"target":'
"""The start of an entry without a source."""
SOURCE = '{"source":'
"""The start of an entry with a source (then :data:`TO_TARGET`)."""
TO_TARGET = ',"target":'
NOT_USED = ',"used":false,"amount":"0.00","reason":'
"""After the target of an entry that took nothing: then the reason, :data:`CLAUSE`, ``}``."""
CLAUSE = ',"clause":'


class Endings:
    """The endings of one clause's entries: ``NOT_USED + quoted(reason) + CLAUSE +
    quoted(clause) + "}"``, the clause quoted once, a reason's ending remembered.

    The reasons of a filter on a status or a code repeat from charge to charge and
    account to account (``status due_insurance is not due_patient or
    pending_patient``); a reason that names its charge or amount does not. At most
    ``limit`` are kept, and all are forgotten when that many are: memory stays flat
    over millions of accounts, and a reason that keeps coming back is soon remembered
    again.
    """

    __slots__ = ("closing", "known", "limit")

    def __init__(self, clause: str, limit: int = 256) -> None:
        self.closing = CLAUSE + quoted(clause) + "}"
        self.known: dict[str, str] = {}
        self.limit = limit

    def __call__(self, reason: str) -> str:
        said = self.known.get(reason)
        if said is None:
            said = NOT_USED + quoted(reason) + self.closing
            if len(self.known) >= self.limit:
                self.known.clear()
            self.known[reason] = said
        return said

    def once(self, reason: str) -> str:
        """The ending of a reason that names its charge or payment (not remembered)."""
        return NOT_USED + quoted(reason) + self.closing


def ending(reason: str, clause: str) -> str:
    """``NOT_USED + quoted(reason) + CLAUSE + quoted(clause) + "}"``, once."""
    return NOT_USED + quoted(reason) + CLAUSE + quoted(clause) + "}"


def used_entry(head: str, amount: str, reason: str, clause_json: str) -> str:
    """A split's entry: ``head`` is ``SOURCE + quoted(source) + TO_TARGET + quoted(target)``,
    ``amount`` as shown, ``clause_json`` the clause already quoted (it is the same for
    every split of a rule)."""
    said = quoted(reason)
    return f'{head},"used":true,"amount":"{amount}","reason":{said}{CLAUSE}{clause_json}}}'


def entries(text: str) -> list[tuple[str | None, str, bool, Cents, str, str | None]]:
    """The trace rows (source, target, used, amount, reason, clause) that ``text``, the
    entries of a trace joined by commas, says (``plans.TraceRow``, spelled out here:
    ``plans`` imports this module)."""
    return [
        (
            entry.get("source"),
            entry["target"],
            entry["used"],
            parse_amount(entry["amount"]),
            entry["reason"],
            entry["clause"],
        )
        for entry in json.loads("[" + text + "]")
    ]
