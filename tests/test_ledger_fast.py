"""The fast account reader against the exact one: the same accounts, the same errors.

:func:`paysplit.ledger_fast.fast_account` may answer None for any line (the exact reader
then decides); it must never accept a line the exact reader refuses, nor give another
account. Every test here reads the same line three ways: the fast reader alone, the
exact reader alone (``account_from_line`` with the shortcut switched off) and
``account_from_line`` as it is. When the fast reader gives an account it is the exact
reader's, value for value and type for type (``JsonInt`` is not ``int``, a
``JsonNumber`` keeps its text, the fields given are the same); when the exact reader
refuses a line the fast one gave None, and ``account_from_line`` reports the exact
reader's problems word for word.

Lines: accounts of generated ledgers (``test_properties.ledgers``) and of the richer
``test_ledger_io.base`` ledger, with refunds, splits and appointments added, then
mutated (values of every kind of field replaced by awkward ones, keys given twice,
dangling references and duplicate ids of every kind, numbers where text goes, exact
and inexact JSON numbers, spaces and tabs around colons, escapes); the example ledgers'
accounts; the fuzz corpus; and lines damaged as the ledger fuzzer damages documents.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import sys
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from test_fuzz_ledgers import CORPUS, EXAMPLES, mutate_bytes, mutate_document
from test_ledger_io import base
from test_properties import ledgers

from paysplit import ledger_io
from paysplit.errors import LedgerError, Problem
from paysplit.ledger import (
    Account,
    Adjustment,
    Appointment,
    Charge,
    CreditNote,
    Installment,
    LedgerHeader,
    Patient,
    Payment,
    PaymentPlan,
    Split,
)
from paysplit.ledger_fast import fast_account
from paysplit.ledger_io import ONE_CALL_BYTES, account_from_line, dump_jsonl_line, load_ledger
from paysplit.ledger_json import Unreadable, parse_json
from paysplit.ledger_refs import Practice
from paysplit.money import JsonInt, JsonNumber

SOURCE = "t.jsonl line 2"
PREFIX = "accounts[0]"


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )


# --------------------------------------------------------------------------
# Reading a line three ways
# --------------------------------------------------------------------------
def header_of(doc: dict[str, Any]) -> LedgerHeader:
    return LedgerHeader.model_validate({k: v for k, v in doc.items() if k != "accounts"})


def practice_of(header: LedgerHeader) -> Practice:
    return Practice.of((p.id for p in header.providers), (o.id for o in header.offices))


def outcome(line: bytes | str, header: LedgerHeader) -> Account | LedgerError:
    try:
        return account_from_line(line, SOURCE, header, PREFIX, 2)
    except LedgerError as error:
        return error


def exact(line: bytes | str, header: LedgerHeader) -> Account | LedgerError:
    """``account_from_line`` with the shortcut switched off: the reader as it was."""
    with mock.patch.object(ledger_io, "fast_account", return_value=None):
        return outcome(line, header)


def same(a: object, b: object, at: str = "account") -> None:
    """``a`` is ``b`` value for value and type for type, fields given included."""
    assert type(a) is type(b), f"{at}: {type(a).__name__} is not {type(b).__name__}"
    if isinstance(a, BaseModel):
        assert isinstance(b, BaseModel)
        assert a.model_fields_set == b.model_fields_set, at
        for name in type(a).model_fields:
            same(getattr(a, name), getattr(b, name), f"{at}.{name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b), f"{at}: keys {list(a)} != {list(b)}"
        for key in a:
            same(a[key], b[key], f"{at}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        assert len(a) == len(b), at
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{at}[{index}]")
    else:
        assert a == b, f"{at}: {a!r} != {b!r}"


def same_account(a: Account, b: Account) -> None:
    same(a, b)
    assert a == b
    assert a.model_dump() == b.model_dump()
    assert dump_jsonl_line(a) == dump_jsonl_line(b)


TALLY: Counter[str] = Counter()


def check(line: bytes | str, header: LedgerHeader) -> Account | None:
    """Read ``line`` the three ways and check they agree; the fast reader's answer."""
    fast = fast_account(
        line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n"),
        practice_of(header),
        max_bytes=ONE_CALL_BYTES,
    )
    slow = exact(line, header)
    real = outcome(line, header)
    if isinstance(slow, LedgerError):
        assert fast is None, f"the fast reader accepted a line the exact one refuses: {slow}"
        assert isinstance(real, LedgerError)
        assert real.source == slow.source
        assert real.problems == slow.problems
        assert real.render() == slow.render()
        TALLY["refused"] += 1
    else:
        assert isinstance(real, Account), real
        same_account(real, slow)
        if fast is not None:
            same_account(fast, slow)
        TALLY["fast" if fast is not None else "exact"] += 1
    return fast


def check_both_types(line: bytes, header: LedgerHeader) -> Account | None:
    """:func:`check` for the bytes, and for the text when they are UTF-8."""
    fast = check(line, header)
    with contextlib.suppress(UnicodeDecodeError):
        check(line.decode("utf-8"), header)
    return fast


# --------------------------------------------------------------------------
# Writing a line: every JSON form, keys given twice, escapes
# --------------------------------------------------------------------------
SEPARATORS = [(",", ":"), (", ", ": "), (",", " : "), (",\t", "\t:\t"), (" ,\r", "\r\n:")]


def render(
    value: Any,
    separators: tuple[str, str] = (",", ":"),
    ascii: bool = False,
    twice: dict[int, tuple[str, Any, bool]] | None = None,
) -> str:
    """JSON text for ``value``; a :class:`JsonNumber` is written as its text (any number,
    NaN too), and ``twice`` gives an object (by ``id``) a key once more, before or after
    the others."""
    item, colon = separators

    def text(node: Any) -> str:
        if isinstance(node, JsonNumber):
            return str(node)
        if isinstance(node, dict):
            pairs = list(node.items())
            if twice and id(node) in twice:
                key, again, first = twice[id(node)]
                pairs.insert(0 if first else len(pairs), (key, again))
            inner = item.join(json.dumps(k, ensure_ascii=ascii) + colon + text(v) for k, v in pairs)
            return "{" + inner + "}"
        if isinstance(node, list | tuple):
            return "[" + item.join(text(v) for v in node) + "]"
        return json.dumps(node, ensure_ascii=ascii)

    return text(value)


def compact(value: Any) -> bytes:
    return render(value).encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------
# Accounts: the records, what each field may hold
# --------------------------------------------------------------------------
MODELS: dict[str, type[BaseModel]] = {
    "account": Account,
    "patient": Patient,
    "appointment": Appointment,
    "charge": Charge,
    "adjustment": Adjustment,
    "payment": Payment,
    "credit": CreditNote,
    "plan": PaymentPlan,
    "installment": Installment,
    "split": Split,
}
LISTS = {
    "patients": "patient",
    "appointments": "appointment",
    "charges": "charge",
    "adjustments": "adjustment",
    "payments": "payment",
    "plans": "plan",
    "splits": "split",
}


def records(account: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every record of an account document (nested ones too), with its kind."""
    found: list[tuple[str, dict[str, Any]]] = [("account", account)]
    for key, kind in LISTS.items():
        items = account.get(key)
        for record in items if isinstance(items, list) else ():
            if not isinstance(record, dict):
                continue
            found.append((kind, record))
            if kind == "payment" and isinstance(record.get("credit"), dict):
                found.append(("credit", record["credit"]))
            installments = record.get("installments") if kind == "plan" else None
            if isinstance(installments, list):
                found += [("installment", i) for i in installments if isinstance(i, dict)]
    return found


def _deep(levels: int) -> Any:
    node: Any = JsonNumber("1")
    for level in range(levels):
        node = {"k": node} if level % 2 else [node]
    return node


AMOUNTS: list[Any] = [
    "0.00",
    "12.50",
    "-12.50",
    "12.5",
    "12",
    "-0.05",
    "-0.00",
    "007.10",
    " 12.50",
    "12.50 ",
    "+12.50",
    "$12.50",
    "-$5.00",
    "12.345",
    "12.340",
    "1e2",
    "١٢.٥٠",
    "１２.５０",
    "",
    "abc",
    "NaN",
    "999999999999.99",
    "-999999999999.99",
    "1000000000000.00",
    JsonNumber("12.50"),
    JsonNumber("12"),
    JsonNumber("-7"),
    JsonNumber("-0"),
    JsonNumber("0"),
    JsonNumber("12.345"),
    JsonNumber("1e2"),
    JsonNumber("1E-2"),
    JsonNumber("0.1000000000000000055511151231257827"),
    JsonNumber("1e400"),
    JsonNumber("NaN"),
    JsonNumber("Infinity"),
    JsonNumber("-Infinity"),
    JsonNumber("999999999999"),
    JsonNumber("-999999999999"),
    JsonNumber("1000000000000"),
    JsonNumber("1" * 30),
    JsonNumber("9" * 4301),
    True,
    None,
    [],
    {},
]
DATES: list[Any] = [
    "2024-01-01",
    "2024-02-29",
    "2023-02-29",
    "2024-1-01",
    " 2024-01-01",
    "2024-01-01 ",
    "\t2024-01-01",
    "2024-01-01\n",
    "２０２４-01-01",
    "٢٠٢٤-01-01",
    "20240101",
    "2024-01-01T00:00:00",
    "2024-13-01",
    "0000-01-01",
    "9999-12-31",
    "",
    JsonNumber("20240101"),
    JsonNumber("86400"),
    None,
    True,
]
MOMENTS: list[Any] = [
    "2025-01-22T11:30:00",
    "2025-01-22T11:30",
    "2025-01-22",
    "2025-01-22T11:30:00Z",
    "2025-01-22T11:30:00+01:00",
    "2025-01-22 11:30:00",
    "2025-01-22T11:30:00.123456",
    "2025-01-22T25:00:00",
    " 2025-01-22T11:30:00",
    "1700000000",
    "",
    JsonNumber("1700000000"),
    JsonNumber("1.5"),
    None,
]
TEXTS: list[Any] = [
    "",
    "x",
    "Dr One",
    ":starts with a colon",
    " : spaced colon",
    "naïve",
    "日本",
    "\u2028",
    "a\tb",
    'a"b',
    "a\\b",
    "\x7f",
    "\ud800",
    "x" * 300,
    JsonNumber("15"),
    JsonNumber("1.5"),
    JsonNumber("-0"),
    None,
    True,
    [],
    {},
    ["x"],
]
EXTRA_VALUES: list[Any] = [
    None,
    True,
    False,
    "",
    "x",
    ":x",
    "a\nb",
    JsonNumber("0"),
    JsonNumber("-0"),
    JsonNumber("7"),
    JsonNumber("-12345678901234567890"),
    JsonNumber("1.5"),
    JsonNumber("12.50"),
    JsonNumber("0.1000000000000000055511151231257827"),
    JsonNumber("1e2"),
    JsonNumber("1E400"),
    JsonNumber("NaN"),
    JsonNumber("9" * 4300),
    JsonNumber("9" * 4301),
    [],
    {},
    [JsonNumber("1"), {"k": JsonNumber("2"), "": None}, "x"],
    {"a": {"b": [JsonNumber("3"), JsonNumber("4")]}},
    _deep(30),
    _deep(31),
    _deep(32),
]
KINDS_OF_FIELD: dict[str, list[Any]] = {
    "type": ["payment", "refund", "Refund", None, JsonNumber("1")],
    "payer": ["patient", "insurance", "other", None],
    "due_to": ["patient", "insurance", "nobody"],
    "void": [True, False, JsonNumber("1"), "true", None],
    "plugins": [{}],
}
REFERENCES = {
    "patient",
    "guarantor",
    "provider",
    "office",
    "appointment",
    "charge",
    "payment",
    "refunds",
    "reverses",
    "installment",
    "transfer",
}


def values_for(key: str, account: dict[str, Any]) -> st.SearchStrategy[Any]:
    """What a mutation may put in field ``key``: mostly what such a field holds, awkwardly."""
    if key in {"amount", "insurance_estimate"}:
        return st.sampled_from(AMOUNTS)
    if key in {"date", "due"}:
        return st.sampled_from(DATES)
    if key == "start":
        return st.sampled_from(MOMENTS)
    if key == "extra":
        return st.sampled_from([None, [], "x", JsonNumber("1")]) | st.dictionaries(
            st.sampled_from(["a", "b", "", ":", "a b", "é"]), st.sampled_from(EXTRA_VALUES)
        )
    if key in KINDS_OF_FIELD:
        return st.sampled_from(KINDS_OF_FIELD[key])
    if key in REFERENCES or key == "id":
        ids = sorted({r["id"] for _, r in records(account) if isinstance(r.get("id"), str)})
        known = [*ids, "DR1", "DR2", "MAIN", "EAST", "NOPE", "", " P1"]
        return st.sampled_from(known) | st.sampled_from(TEXTS)
    if key in {"charges", "splits", "payments", "voids", "credits"}:
        ids = sorted({r["id"] for _, r in records(account) if isinstance(r.get("id"), str)})
        return st.lists(st.sampled_from([*ids, "NOPE"]), max_size=3) | st.sampled_from(TEXTS)
    return st.sampled_from(TEXTS)


# --------------------------------------------------------------------------
# Accounts: more records, then mutations
# --------------------------------------------------------------------------
def enrich(draw: st.DrawFn, account: dict[str, Any]) -> None:
    """Add what the generated ledgers lack: refunds, splits (to charges, installments,
    reversing others), appointments with a start, integers in ``extra``."""
    patients = [p["id"] for p in account.get("patients", [])]
    payments = [p for p in account.get("payments", []) if p.get("type") == "payment"]
    charges = [c["id"] for c in account.get("charges", [])]
    if payments and draw(st.booleans()):
        paid = draw(st.sampled_from(payments))
        refund = {
            "id": "RFX",
            "patient": paid["patient"],
            "payer": paid["payer"],
            "date": paid["date"],
            "type": "refund",
            "amount": draw(st.sampled_from(["-1.00", JsonNumber("-1"), "-0.01"])),
            "refunds": paid["id"],
        }
        account["payments"].append(refund)
    if payments and charges:
        splits = account.setdefault("splits", [])
        for n in range(draw(st.integers(0, 3))):
            split = {
                "id": f"SX{n}",
                "payment": draw(st.sampled_from(payments))["id"],
                "charge": draw(st.sampled_from(charges)),
                "amount": draw(st.sampled_from(["1.00", JsonNumber("2"), "0.50"])),
            }
            if draw(st.booleans()):
                split["rule"] = "r"
            splits.append(split)
        for plan in account.get("plans", []):
            for installment in plan.get("installments", [])[:1]:
                splits.append(
                    {
                        "id": f"SI{installment['id']}",
                        "payment": payments[0]["id"],
                        "charge": plan["charges"][0],
                        "installment": installment["id"],
                        "amount": "1.00",
                        "date": "2025-01-01",
                    }
                )
        if splits and draw(st.booleans()):
            splits.append(
                {
                    "id": "SREV",
                    "payment": splits[0]["payment"],
                    "charge": splits[0]["charge"],
                    "amount": "-1.00",
                    "reverses": splits[0]["id"],
                    "transfer": "T1",
                }
            )
    if patients and draw(st.booleans()):
        account.setdefault("appointments", []).append(
            {
                "id": "APX",
                "patient": draw(st.sampled_from(patients)),
                "provider": "DR1",
                "office": "MAIN",
                "start": draw(st.sampled_from(MOMENTS[:7])),
            }
        )
    if draw(st.booleans()):
        _, record = draw(st.sampled_from(records(account)))
        record["extra"] = {"n": JsonNumber("3"), "list": [JsonNumber("-4"), "x", None, True]}


def mutate(draw: st.DrawFn, account: dict[str, Any]) -> None:
    """One change to a field of one record: a value replaced, a field removed or added."""
    kind, record = draw(st.sampled_from(records(account)))
    fields = sorted({*record, *MODELS[kind].model_fields, "amout"})
    key = draw(st.sampled_from(fields))
    if key in record and draw(st.integers(0, 5)) == 0:
        del record[key]
    else:
        record[key] = draw(values_for(key, account))


def twice(draw: st.DrawFn, account: dict[str, Any]) -> dict[int, tuple[str, Any, bool]]:
    """A key of one object (a record, or an object in ``extra``) given a second time."""
    objects: list[dict[str, Any]] = []
    pending: list[Any] = [account]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            objects.append(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    target = draw(st.sampled_from([o for o in objects if o] or [account]))
    key = draw(st.sampled_from(sorted(target) or ["id"]))
    value = target.get(key)
    again = draw(st.sampled_from([value, "other", JsonNumber("1"), None]))
    return {id(target): (key, again, draw(st.booleans()))}


@st.composite
def account_lines(draw: st.DrawFn) -> tuple[bytes, LedgerHeader]:
    """A line (an account of a ledger, maybe changed) and the header it goes with."""
    doc = draw(st.builds(base) | ledgers())
    header = header_of(doc)
    account = copy.deepcopy(draw(st.sampled_from(doc["accounts"])))
    if draw(st.booleans()):
        enrich(draw, account)
    changes = draw(st.integers(0, 3))
    for _ in range(changes):
        mutate(draw, account)
    repeated = twice(draw, account) if draw(st.integers(0, 4)) == 0 else None
    separators = draw(st.sampled_from(SEPARATORS))
    ascii = draw(st.integers(0, 5)) == 0
    text = render(account, separators, ascii, repeated)
    if draw(st.integers(0, 10)) == 0:
        # An escape that reads as the plain key: the shortcut must leave it to the exact reader.
        text = text.replace('"patients"', '"\\u0070atients"', 1)
    line = text.encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return line, header


# --------------------------------------------------------------------------
# The property
# --------------------------------------------------------------------------
@fuzz(1500)
@given(account_lines())
def _the_readers_agree(case: tuple[bytes, LedgerHeader]) -> None:
    line, header = case
    check_both_types(line, header)


def test_the_fast_reader_agrees_with_the_exact_one(capsys: pytest.CaptureFixture[str]) -> None:
    """On every line, and most lines that load take the shortcut (it is no dead code)."""
    TALLY.clear()
    _the_readers_agree()
    with capsys.disabled():
        print(f"\nfast reader: {dict(TALLY)}")
    assert TALLY["fast"] > 200
    assert TALLY["refused"] > 200
    assert TALLY["exact"] > 20  # lines only the exact reader accepts were generated too


def _without_extra(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_extra(v) for k, v in node.items() if k != "extra"}
    if isinstance(node, list):
        return [_without_extra(v) for v in node]
    return node


@fuzz(300)
@given(ledgers(), st.sampled_from(SEPARATORS[:4]))
def test_every_valid_generated_account_takes_the_fast_path(
    doc: dict[str, Any], separators: tuple[str, str]
) -> None:
    """Without ``extra`` (arbitrary text, escapes) a generated line has nothing the
    shortcut leaves to the exact reader."""
    doc = _without_extra(doc)
    header = header_of(doc)
    for account in doc["accounts"]:
        line = render(account, separators).encode()
        assert check(line, header) is not None, line


@fuzz(300)
@given(st.builds(base) | ledgers(), st.randoms(use_true_random=False))
def test_lines_damaged_as_the_fuzzer_damages_documents(
    doc: dict[str, Any], rng: random.Random
) -> None:
    header = header_of(doc)
    account = rng.choice(doc["accounts"])
    text = mutate_document(account, rng)
    check(text.encode("utf-8", "surrogatepass"), header)
    check(mutate_bytes(compact(account), rng), header)


# --------------------------------------------------------------------------
# Examples and the fuzz corpus
# --------------------------------------------------------------------------
def _example_cases() -> Iterator[tuple[str, bytes, LedgerHeader]]:
    for path in EXAMPLES:
        doc, _ = parse_json(path.read_bytes())
        assert isinstance(doc, dict)
        header = header_of(doc)
        for index, account in enumerate(doc["accounts"]):
            name = f"{path.name}[{index}]"
            yield f"{name} as written", compact(account), header
            yield f"{name} spaced", render(account, (", ", ": ")).encode(), header
        for account in load_ledger(path).accounts:
            yield (
                f"{path.name} {account.id} as paysplit writes it",
                dump_jsonl_line(account).encode(),
                header,
            )


EXAMPLE_CASES = list(_example_cases())


@pytest.mark.parametrize(
    ("name", "line", "header"), EXAMPLE_CASES, ids=[c[0] for c in EXAMPLE_CASES]
)
def test_every_account_of_every_example(name: str, line: bytes, header: LedgerHeader) -> None:
    fast = check_both_types(line, header)
    assert fast is not None, f"{name}: a valid example takes the exact path"


def test_an_example_as_json_lines_reads_the_same_either_way(tmp_path: Path) -> None:
    """``iter_jsonl`` (each line through ``account_from_line``), shortcut on and off."""
    for path in EXAMPLES:
        doc, _ = parse_json(path.read_bytes())
        assert isinstance(doc, dict)
        lines = [render({k: v for k, v in doc.items() if k != "accounts"})]
        lines += [render(a) for a in doc["accounts"]] + [render(doc["accounts"][0])]  # twice
        lines.insert(2, '{"id": "BROKEN", "patients": [], "amount": 1}')
        jsonl = tmp_path / f"{path.stem}.jsonl"
        jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _, fast = ledger_io.iter_jsonl(jsonl)
        got = list(fast)
        with mock.patch.object(ledger_io, "fast_account", return_value=None):
            _, slow = ledger_io.iter_jsonl(jsonl)
            wanted = list(slow)
        assert [n for n, _ in got] == [n for n, _ in wanted]
        for (_, a), (_, b) in zip(got, wanted, strict=True):
            if isinstance(b, LedgerError):
                assert isinstance(a, LedgerError)
                assert (a.source, a.problems) == (b.source, b.problems)
            else:
                assert isinstance(a, Account)
                same_account(a, b)
        assert isinstance(got[-1][1], LedgerError)  # the account given twice
        assert "is used twice (also at line" in got[-1][1].problems[0].message


CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix == ".json")
FALLBACK_HEADER = header_of(base())


def _corpus_lines(data: bytes) -> Iterator[tuple[bytes, LedgerHeader]]:
    yield data, FALLBACK_HEADER  # the whole file as one line: never an account
    try:
        doc, _ = parse_json(data)
    except Unreadable:
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts"), list):
        return
    try:
        header = header_of(doc)
    except ValidationError:
        header = FALLBACK_HEADER
    for account in doc["accounts"][:50]:
        yield compact(account), header
        yield render(account, (", ", ": "), ascii=True).encode(), header


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_every_account_of_the_fuzz_corpus(path: Path) -> None:
    for line, header in _corpus_lines(path.read_bytes()):
        if len(line) <= 4 * ONE_CALL_BYTES:
            check(line, header)


# --------------------------------------------------------------------------
# The cases the shortcut leaves to the exact reader, one by one
# --------------------------------------------------------------------------
HEADER = header_of(base())


def base_account() -> dict[str, Any]:
    account: dict[str, Any] = base()["accounts"][0]
    return account


def test_the_base_account_takes_the_fast_path() -> None:
    fast = check(json.dumps(base_account()).encode(), HEADER)
    assert fast is not None
    assert fast.charges[0].amount == 10000
    assert fast.payments[1].refunds == "PAY1"


def test_a_key_given_twice_is_left_to_the_exact_reader() -> None:
    text = json.dumps(base_account()).replace(
        '"amount": "100.00"', '"amount": "1.00", "amount"  :"100.00"'
    )
    line = text.encode()
    assert check(line, HEADER) is None
    error = outcome(line, HEADER)
    assert isinstance(error, LedgerError)
    assert error.problems == [
        Problem("accounts[0].charges[0].amount", '"amount" is given twice in this object')
    ]


def test_a_key_given_twice_inside_extra_and_through_an_escape() -> None:
    account = base_account()
    account["charges"][1]["extra"] = {"code": "A"}
    line = json.dumps(account).replace('{"code": "A"}', '{"code": "A", "code": "B"}').encode()
    assert check(line, HEADER) is None
    error = outcome(line, HEADER)
    assert isinstance(error, LedgerError)
    assert error.problems == [
        Problem("accounts[0].charges[1].extra.code", '"code" is given twice in this object')
    ]
    escaped = json.dumps(base_account()).replace('"memo"', '"x"')
    escaped = escaped.replace('"status": "due_patient"', '"status": "a", "st\\u0061tus": "b"', 1)
    assert check(escaped.encode(), HEADER) is None
    error = outcome(escaped.encode(), HEADER)
    assert isinstance(error, LedgerError)
    assert error.problems == [
        Problem("accounts[0].charges[0].status", '"status" is given twice in this object')
    ]


def test_a_fraction_in_extra_is_kept_exactly_as_written() -> None:
    account = base_account()
    account["charges"][0]["extra"] = {
        "ratio": JsonNumber("0.1000000000000000055511151231257827"),
        "n": JsonNumber("7"),
        "big": JsonNumber("1E400"),
    }
    line = compact(account)
    assert check(line, HEADER) is None  # a float would lose the text: the exact reader
    read = outcome(line, HEADER)
    assert isinstance(read, Account)
    extra = read.charges[0].extra
    assert extra is not None
    assert type(extra["ratio"]) is JsonNumber
    assert extra["ratio"] == "0.1000000000000000055511151231257827"
    assert type(extra["big"]) is JsonNumber and extra["big"] == "1E400"
    assert type(extra["n"]) is JsonInt and extra["n"] == 7
    assert '"ratio":0.1000000000000000055511151231257827' in dump_jsonl_line(read)


def test_integers_in_extra_are_json_ints_on_the_fast_path() -> None:
    account = base_account()
    account["extra"] = {"n": 7, "deep": [1, {"k": -2, "s": "x", "t": True, "z": None}]}
    fast = check(json.dumps(account).encode(), HEADER)
    assert fast is not None and fast.extra is not None
    assert type(fast.extra["n"]) is JsonInt and fast.extra["n"] == 7
    assert [type(x) for x in fast.extra["deep"]] == [JsonInt, dict]
    assert type(fast.extra["deep"][1]["k"]) is JsonInt
    assert type(fast.extra["deep"][1]["t"]) is bool


def test_an_integer_too_long_for_python_stays_text_on_the_exact_path() -> None:
    account = base_account()
    account["extra"] = {"n": JsonNumber("9" * 700)}
    line = compact(account)
    limit = sys.get_int_max_str_digits()
    assert check(line, HEADER) is not None  # 700 digits: an int both ways
    sys.set_int_max_str_digits(640)
    try:
        assert check(line, HEADER) is None  # too long for int(): the reader keeps the text
        read = outcome(line, HEADER)
        assert isinstance(read, Account) and read.extra is not None
        assert type(read.extra["n"]) is JsonNumber
    finally:
        sys.set_int_max_str_digits(limit)


@pytest.mark.parametrize(
    ("written", "cents"),
    [('"12.50"', 1250), ('"12.5"', 1250), ("12", 1200), ('"-0.05"', -5), ('" 12.50"', 1250)],
)
def test_amounts_the_fast_path_reads(written: str, cents: int) -> None:
    account = base_account()
    account["charges"][0]["amount"] = JsonNumber(written)
    fast = check(compact(account), HEADER)
    if written.startswith('" '):
        assert fast is not None and fast.charges[0].amount == cents  # as parse_amount reads it
    assert fast is not None
    assert fast.charges[0].amount == cents


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("1e2", "accounts[0].charges[0].amount: 1e2 is written with an exponent; write it as a "
         "plain decimal like 1000.00"),
        ("12.345", "accounts[0].charges[0].amount: 12.345 has more than two decimal places"),
        ("0.1000000000000000055511151231257827",
         "accounts[0].charges[0].amount: 0.1000000000000000055511151231257827 has more than two "
         "decimal places"),
        ("1e400", "accounts[0].charges[0].amount: 1e400 is written with an exponent; write it "
         "as a plain decimal like 1000.00"),
        ("NaN", 'accounts[0].charges[0].amount: NaN is not a number a ledger can hold; write '
         'amounts like "12.50"'),
        ("1000000000000", "accounts[0].charges[0].amount: 1000000000000 is too large for an "
         "amount"),
        ('"12.345"', "accounts[0].charges[0].amount: 12.345 has more than two decimal places"),
        ('"$12.50"', 1250),
        ('"١٢.٥٠"', "accounts[0].charges[0].amount: '١٢.٥٠' is written with digits other than "
         "0-9; write it like 12.50"),
    ],
)  # fmt: skip
def test_a_json_number_with_a_fraction_is_never_read_as_a_float(
    written: str, read: int | str
) -> None:
    account = base_account()
    account["charges"][0]["amount"] = JsonNumber(written)
    line = compact(account)
    fast = check(line, HEADER)
    if written[0] != '"':  # a JSON number with a fraction or an exponent: the exact reader
        assert fast is None
    got = outcome(line, HEADER)
    if isinstance(read, int):
        assert isinstance(got, Account) and got.charges[0].amount == read
    else:
        assert isinstance(got, LedgerError)
        assert [str(p) for p in got.problems] == [read]


@pytest.mark.parametrize(
    "date", [" 2024-01-01", "2024-01-01 ", "2024-1-01", "２０２４-01-01", "2024-02-30", "20240101"]
)
def test_dates_the_shortcut_leaves_to_the_exact_reader(date: str) -> None:
    account = base_account()
    account["charges"][0]["date"] = date
    line = json.dumps(account, ensure_ascii=False).encode()
    assert check(line, HEADER) is None
    got = outcome(line, HEADER)
    if date.strip() == "2024-01-01":
        assert isinstance(got, Account) and str(got.charges[0].date) == "2024-01-01"
    else:
        assert isinstance(got, LedgerError)


def test_a_text_that_starts_with_a_colon_is_only_slower() -> None:
    account = base_account()
    account["charges"][0]["code"] = ": D0120"
    line = json.dumps(account).encode()
    assert check(line, HEADER) is None  # counted as a key: the exact reader decides
    got = outcome(line, HEADER)
    assert isinstance(got, Account) and got.charges[0].code == ": D0120"


def test_spaces_and_tabs_around_colons_take_the_fast_path() -> None:
    for separators in SEPARATORS:
        line = render(base_account(), separators).encode()
        assert check(line, HEADER) is not None, separators


def test_explicit_nulls_are_fields_given() -> None:
    account = base_account()
    account["charges"][1]["office"] = None
    account["extra"] = None
    fast = check(json.dumps(account).encode(), HEADER)
    assert fast is not None
    assert "office" in fast.charges[1].model_fields_set
    assert "extra" in fast.model_fields_set


REFERENCE_CHANGES: list[tuple[str, str, str]] = [
    # (record list, index, field) -> a value that does not resolve
    ("patients", "1", "guarantor"),
    ("appointments", "0", "patient"),
    ("appointments", "0", "provider"),
    ("appointments", "0", "office"),
    ("charges", "0", "patient"),
    ("charges", "0", "provider"),
    ("charges", "0", "office"),
    ("charges", "0", "appointment"),
    ("adjustments", "1", "patient"),
    ("adjustments", "1", "provider"),
    ("adjustments", "1", "office"),
    ("adjustments", "1", "charge"),
    ("payments", "0", "patient"),
    ("payments", "0", "provider"),
    ("payments", "0", "office"),
    ("payments", "0", "appointment"),
    ("payments", "1", "refunds"),
    ("plans", "0", "patient"),
    ("splits", "0", "payment"),
    ("splits", "0", "charge"),
    ("splits", "0", "reverses"),
    ("splits", "1", "installment"),
]


@pytest.mark.parametrize("value", ["NOPE", ""])
@pytest.mark.parametrize(("key", "index", "field"), REFERENCE_CHANGES)
def test_every_dangling_reference_is_left_to_the_exact_reader(
    key: str, index: str, field: str, value: str
) -> None:
    account = base_account()
    account[key][int(index)][field] = value
    line = json.dumps(account).encode()
    assert check(line, HEADER) is None
    assert isinstance(outcome(line, HEADER), LedgerError)


def _plan_charge(account: dict[str, Any]) -> None:
    account["plans"][0]["charges"] = ["C1", "NOPE"]


def _credit_provider(account: dict[str, Any]) -> None:
    account["payments"][0]["credit"] = {"due_to": "patient", "provider": "DR9"}


def _credit_office(account: dict[str, Any]) -> None:
    account["payments"][0]["credit"] = {"due_to": "patient", "office": "EAST"}


def _own_guarantor(account: dict[str, Any]) -> None:
    account["patients"][1]["guarantor"] = "P2"


def _duplicate(key: str, index: int = 1) -> Any:
    def change(account: dict[str, Any]) -> None:
        account[key][index]["id"] = account[key][0]["id"]

    return change


def _two_installments(account: dict[str, Any]) -> None:
    plan = copy.deepcopy(account["plans"][0])
    plan["id"] = "PLAN2"
    account["plans"].append(plan)  # I1 in two plans of one account


def _positive_unattached(account: dict[str, Any]) -> None:
    account["adjustments"][0]["amount"] = "20.00"


def _zero_unattached(account: dict[str, Any]) -> None:
    account["adjustments"][0]["amount"] = "0.00"


def _positive_refund(account: dict[str, Any]) -> None:
    account["payments"][1]["amount"] = "10.00"


def _refund_without_refunds(account: dict[str, Any]) -> None:
    del account["payments"][1]["refunds"]


def _refund_of_itself(account: dict[str, Any]) -> None:
    account["payments"][1]["refunds"] = "RF1"


def _refund_of_a_refund(account: dict[str, Any]) -> None:
    refund = copy.deepcopy(account["payments"][1])
    refund.update(id="RF2", refunds="RF1")
    account["payments"].append(refund)


def _negative_payment(account: dict[str, Any]) -> None:
    account["payments"][0]["amount"] = "-1.00"


def _payment_with_refunds(account: dict[str, Any]) -> None:
    account["payments"][0]["refunds"] = "RF1"


def _split_to_nothing(account: dict[str, Any]) -> None:
    del account["splits"][0]["charge"]


def _installment_split_without_charge(account: dict[str, Any]) -> None:
    del account["splits"][1]["charge"]


def _installment_split_to_another_charge(account: dict[str, Any]) -> None:
    account["splits"][1]["charge"] = "C2"


RULE_CHANGES = {
    "plan charge": _plan_charge,
    "credit provider": _credit_provider,
    "credit office": _credit_office,
    "own guarantor": _own_guarantor,
    "two patients": _duplicate("patients"),
    "two charges": _duplicate("charges"),
    "two adjustments": _duplicate("adjustments"),
    "two payments": _duplicate("payments"),
    "two splits": _duplicate("splits"),
    "installment in two plans": _two_installments,
    "positive unattached adjustment": _positive_unattached,
    "zero unattached adjustment": _zero_unattached,
    "positive refund": _positive_refund,
    "refund without refunds": _refund_without_refunds,
    "refund of itself": _refund_of_itself,
    "refund of a refund": _refund_of_a_refund,
    "negative payment": _negative_payment,
    "payment with refunds": _payment_with_refunds,
    "split to nothing": _split_to_nothing,
    "installment split without charge": _installment_split_without_charge,
    "installment split to another charge": _installment_split_to_another_charge,
}


@pytest.mark.parametrize("name", list(RULE_CHANGES))
def test_every_rule_of_the_document_is_left_to_the_exact_reader(name: str) -> None:
    account = base_account()
    RULE_CHANGES[name](account)
    line = json.dumps(account).encode()
    assert check(line, HEADER) is None
    assert isinstance(outcome(line, HEADER), LedgerError)


def test_what_stays_valid_takes_the_fast_path() -> None:
    """The same id in two kinds, an attached positive adjustment, a credit note: fine."""
    account = base_account()
    account["charges"][1]["id"] = "P1"  # a charge may share a patient's id
    account["adjustments"][1]["amount"] = "0.00"
    account["payments"][0]["credit"] = {"due_to": "insurance", "provider": "DR2", "office": None}
    account["appointments"].append({"id": "AP2", "patient": "P2", "start": "2025-01-22T11:30"})
    fast = check(json.dumps(account).encode(), HEADER)
    assert fast is not None
    assert fast.charges[1].id == "P1"


def test_a_line_past_the_one_call_limit_takes_the_exact_path() -> None:
    account = base_account()
    account["extra"] = {"pad": "x" * ONE_CALL_BYTES}
    line = json.dumps(account).encode()
    assert check(line, HEADER) is None
    assert isinstance(outcome(line, HEADER), Account)


def test_a_byte_order_mark_and_text_that_is_not_utf8() -> None:
    line = json.dumps(base_account()).encode()
    assert check(b"\xef\xbb\xbf" + line, HEADER) is None
    assert isinstance(outcome(b"\xef\xbb\xbf" + line, HEADER), Account)
    bad = line.replace(b'"Jenny"', b'"J\xed\xa0\x80nny"')
    assert check(bad, HEADER) is None
    error = outcome(bad, HEADER)
    assert isinstance(error, LedgerError)
    assert "is not UTF-8 text" in error.problems[0].message


# --------------------------------------------------------------------------
# The models' JSON mode: what it reads, what it leaves to the exact reader
# --------------------------------------------------------------------------
CHARGE = '{"id":"C","patient":"P","provider":"D","date":"2024-01-01","status":"s","amount":%s}'


@pytest.mark.parametrize(
    ("amount", "cents"),
    [('"12.50"', 1250), ("12", 1200), ("-3", -300), ('"-0.05"', -5), ('"0.5"', 50),
     ('"999999999999.99"', 99999999999999), ("999999999999", 99999999999900)],
)  # fmt: skip
def test_json_mode_reads_amounts_exactly(amount: str, cents: int) -> None:
    charge = Charge.model_validate_json(CHARGE % amount)
    assert charge.amount == cents
    assert type(charge.amount) is int


@pytest.mark.parametrize(
    "amount",
    ["12.5", "12.50", "1e2", "1E2", "0.1000000000000000055511151231257827", "1e400", "NaN",
     "Infinity", "-Infinity", "1000000000000", '"1000000000000.00"', '"12.345"', "true", "null",
     "[]", '"1e2"', '"١٢.٥٠"'],
)  # fmt: skip
def test_json_mode_never_reads_a_float_or_a_bad_amount(amount: str) -> None:
    with pytest.raises(ValidationError):
        Charge.model_validate_json(CHARGE % amount)


def test_python_mode_is_what_it_was() -> None:
    """``model_validate`` (every reader but the shortcut) keeps its own rules."""
    doc = {
        "id": "C",
        "patient": "P",
        "provider": "D",
        "date": " 2024-01-01 ",
        "status": "s",
        "amount": 1250,
        "insurance_estimate": JsonInt(3),
        "extra": {"ratio": 0.5, "n": 3},
    }
    charge = Charge.model_validate(doc)
    assert charge.amount == 1250  # a Python int is cents
    assert charge.insurance_estimate == 300  # a JsonInt is whole units
    assert str(charge.date) == "2024-01-01"
    assert charge.extra == {"ratio": 0.5, "n": 3}
    with pytest.raises(ValidationError, match="Input should be a valid string"):
        Charge.model_validate({**doc, "id": JsonNumber("1.5")})
    with pytest.raises(ValidationError, match="binary floating-point"):
        Charge.model_validate({**doc, "amount": 12.5})


def test_json_mode_extra() -> None:
    base_charge = json.loads(CHARGE % '"1.00"')

    def extra(value: str) -> Any:
        return Charge.model_validate_json(
            json.dumps(base_charge)[:-1] + ',"extra":' + value + "}"
        ).extra

    read = extra('{"a":1,"b":[2,{"c":-3}],"d":"x","e":null,"f":true}')
    assert read == {"a": 1, "b": [2, {"c": -3}], "d": "x", "e": None, "f": True}
    assert type(read["a"]) is JsonInt and type(read["b"][1]["c"]) is JsonInt
    for refused in ['{"a":1.5}', '{"a":[1e2]}', '{"a":NaN}', "[]", '"x"', "1"]:
        with pytest.raises(ValidationError):
            extra(refused)
    assert extra(json.dumps({"d": _plain_deep(31)})) is not None
    with pytest.raises(ValidationError, match="nested more than 32"):
        extra(json.dumps({"d": _plain_deep(32)}))


def _plain_deep(levels: int) -> Any:
    node: Any = 1
    for _ in range(levels):
        node = [node]
    return node


def test_json_mode_dates_and_times() -> None:
    assert str(Charge.model_validate_json(CHARGE % '"1.00"').date) == "2024-01-01"
    for date in ['" 2024-01-01"', '"2024-1-01"', "20240101", '"2024-01-01T00:00:00"',
                 '"2024-01-01\\n"', '"２０２４-01-01"']:  # fmt: skip
        with pytest.raises(ValidationError):
            Charge.model_validate_json((CHARGE % '"1.00"').replace('"2024-01-01"', date))
    start = '{"id":"A","patient":"P","start":%s}'
    read = Appointment.model_validate_json(start % '"2025-01-22T11:30:00"').start
    assert read is not None and read.isoformat() == "2025-01-22T11:30:00"
    for refused in ["1700000000", "1.5", '"2025-01-22T11:30:00Z"']:
        with pytest.raises(ValidationError):
            Appointment.model_validate_json(start % refused)


def _nested_records(model: type[BaseModel], at: str = "") -> set[str]:
    found: set[str] = set()
    for name, field in model.model_fields.items():
        for arg in _leaves(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                path = f"{at}{name}"
                found |= {f"{path}:{arg.__name__}"} | _nested_records(arg, path + ".")
    return found


def _leaves(annotation: Any) -> Iterator[Any]:
    args = typing.get_args(annotation)
    if not args:
        yield annotation
    for arg in args:
        yield from _leaves(arg)


def test_the_key_count_knows_every_record_an_account_holds() -> None:
    """paysplit.ledger_fast counts the keys of exactly these records: a new kind of nested
    record must be added there (and here)."""
    assert _nested_records(Account) == {
        "patients:Patient",
        "appointments:Appointment",
        "charges:Charge",
        "adjustments:Adjustment",
        "payments:Payment",
        "payments.credit:CreditNote",
        "plans:PaymentPlan",
        "plans.installments:Installment",
        "splits:Split",
    }
