"""The trace as JSON text (paysplit.trace_json): each entry the fast path writes is the
entry pydantic-core writes for the same row, and reads back as that row."""

from __future__ import annotations

import datetime as dt
import json.encoder

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError, to_json

from paysplit.plans import PlanDraft, TraceEntry
from paysplit.trace_json import (
    SOURCE,
    TARGET,
    TO_TARGET,
    Endings,
    ending,
    entries,
    quoted,
    used_entry,
)

# Every character but lone surrogates (which UTF-8 cannot hold), control characters,
# quotes and backslashes included.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(texts, texts)
def test_quoted_is_pydantic_cores_json_string_and_joins(left: str, right: str) -> None:
    assert quoted(left).encode() == to_json(left)
    # (the json module's pure-Python escaper, which Python without the C one uses, too)
    assert json.encoder.py_encode_basestring(left) == quoted(left)
    # what the fast path relies on to quote a charge's id and a sentence's end apart
    assert quoted(left + right) == quoted(left)[:-1] + quoted(right)[1:]


def _pydantic(
    source: str | None, target: str, used: bool, amount: int, reason: str, at: str
) -> str:
    entry = TraceEntry(
        source=source, target=target, used=used, amount=amount, reason=reason, clause=at
    )
    return entry.model_dump_json()


@given(texts, texts, texts, texts)
def test_each_entry_is_the_one_pydantic_core_writes(
    source: str, target: str, reason: str, clause: str
) -> None:
    remembered = Endings(clause)
    skipped = TARGET + quoted(target) + remembered(reason)
    assert skipped == _pydantic(None, target, False, 0, reason, clause)
    assert TARGET + quoted(target) + remembered.once(reason) == skipped
    assert TARGET + quoted(target) + remembered(reason) == skipped  # (now remembered)
    head = SOURCE + quoted(source) + TO_TARGET + quoted(target)
    assert head + ending(reason, clause) == _pydantic(source, target, False, 0, reason, clause)
    assert used_entry(head, "12.05", reason, quoted(clause)) == _pydantic(
        source, target, True, 1205, reason, clause
    )


def test_endings_remember_only_so_many_reasons() -> None:
    """Memory stays flat: when ``limit`` reasons are known they are all forgotten, so a
    reason that keeps coming back is remembered again."""
    remembered = Endings("a.rules:1:1", limit=2)
    for number in range(5):
        assert remembered(f"reason {number}") == ending(f"reason {number}", "a.rules:1:1")
        assert len(remembered.known) <= 2
    assert list(remembered.known) == ["reason 4"]


rows = st.lists(
    st.tuples(st.none() | texts, texts, st.booleans(), st.integers(0, 10**9), texts, texts),
    max_size=6,
)


def _draft(trace: list[object] | None = None, trace_json: str | None = None) -> PlanDraft:
    return PlanDraft(
        operation="apply",
        rule="r",
        blocked=None,
        splits=[("PAY1-1", "PAY1", "C1", None, 500, "T-PAY1-1", "prepayment")],
        credits=(),
        unallocated={"PAY1": 0},
        warnings=(),
        trace=trace,  # type: ignore[arg-type]
        trace_json=trace_json,
        date=dt.date(2026, 11, 24),
    )


@given(rows)
def test_a_draft_with_its_trace_as_text_is_the_draft_with_its_rows(trace: list[object]) -> None:
    by_rows = _draft(trace=trace)
    text = ",".join(
        _pydantic(source, target, used, amount, reason, at)  # type: ignore[arg-type]
        for source, target, used, amount, reason, at in trace  # type: ignore[misc]
    )
    by_text = _draft(trace_json=text)
    assert by_text.to_json() == by_rows.to_json()
    assert by_text.trace == trace == entries(text)
    assert by_text.to_plan() == by_rows.to_plan()


SKIPPED_C1 = TARGET + quoted("C1") + ending("skipped", "a.rules:1:1")


def test_rows_given_later_replace_the_text() -> None:
    draft = _draft(trace_json=SKIPPED_C1)
    draft.trace = []
    assert draft.trace_json is None
    assert b'"trace":[]' in draft.to_json()


def test_text_given_later_replaces_the_rows() -> None:
    draft = _draft(trace=[(None, "C9", False, 0, "other", "b.rules:2:2")])
    draft.trace_json = SKIPPED_C1
    assert draft.trace == [(None, "C1", False, 0, "skipped", "a.rules:1:1")]
    assert draft.to_json() == _draft(trace_json=SKIPPED_C1).to_json()


def test_rows_read_from_the_text_hold_the_trace_from_then_on() -> None:
    """Once read, the rows are the trace: a change to them is in the JSON and the model
    alike (the text is not kept beside them to say something else)."""
    draft = _draft(trace_json=SKIPPED_C1)
    draft.trace.append(("PAY1", "C2", False, 0, "added", "a.rules:1:1"))
    draft.trace[0] = (None, "C1", False, 0, "changed", "a.rules:1:1")
    assert draft.trace_json is None
    assert draft.to_json() == draft.to_plan().model_dump_json().encode()
    assert b'"reason":"changed"' in draft.to_json() and b'"reason":"added"' in draft.to_json()


def test_a_draft_takes_its_trace_as_rows_or_as_text_not_both() -> None:
    with pytest.raises(ValueError, match="rows or as text, not both"):
        _draft(trace=[], trace_json=SKIPPED_C1)


def test_text_utf8_cannot_hold_fails_as_it_does_in_rows() -> None:
    lone = "\ud800"
    with pytest.raises(PydanticSerializationError):
        _draft(trace=[(None, "C1", False, 0, lone, "a.rules:1:1")]).to_json()
    with pytest.raises(PydanticSerializationError):
        _draft(trace_json=TARGET + quoted("C1") + ending(lone, "a.rules:1:1")).to_json()
