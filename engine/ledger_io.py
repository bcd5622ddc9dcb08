"""Reading and writing ledger documents: every problem at once, never a float, never half a file.

This module is the way a ledger gets from bytes to :class:`~paysplit.ledger.Ledger` and
back (``docs/ledger.md``), and the one import for it: loading a JSON document
(:func:`load_ledger`, :func:`parse_ledger_text`, :func:`ledger_from_document`), a JSON
Lines ledger streamed line by line, a bad line costing only itself (:func:`iter_jsonl`,
:func:`account_from_line`, :func:`load_jsonl_ledger`), and writing (re-exported). Each
load runs the same passes, each owned by a module of its own:

* :mod:`paysplit.ledger_json`: JSON text to values exactly (numbers keep their text,
  no NaN, no duplicate keys), within ``PAYSPLIT_MAX_LEDGER_BYTES``;
* :mod:`paysplit.ledger_schema`: the shape, one record at a time, pydantic's errors as
  sentences a practice implementer understands;
* :mod:`paysplit.ledger_refs`: the linear pass, ids and references and the rules of the
  document; it runs even when the shape is wrong elsewhere, so one load reports every
  problem;
* :mod:`paysplit.ledger_problems`: every problem's JSON path, in document order, at most
  :data:`MAX_PROBLEMS` of them, so a mangled file of millions of records cannot exhaust
  memory;
* :mod:`paysplit.ledger_write`: JSON text for a ledger, written atomically.

An account line of a JSON Lines ledger is first offered to :mod:`paysplit.ledger_fast`,
which reads a valid line in one pydantic-core call and vouches for it; any line it
cannot vouch for (a problem, or a form only the exact reader reads) takes the passes
above, so what loads and every problem reported are the same either way.

Invariants of a ledger that loads live in :mod:`paysplit.invariants`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paysplit.errors import LedgerError, Problem, UsageError
from paysplit.ledger import Account, Ledger, LedgerHeader
from paysplit.ledger_fast import fast_account
from paysplit.ledger_json import (
    DEFAULT_MAX_LEDGER_BYTES,
    LEDGER_FORMATS,
    MAX_LEDGER_BYTES_ENV,
    Unreadable,
    max_ledger_bytes,
    parse_json,
    read_limited,
    read_line,
    too_large,
)
from paysplit.ledger_problems import (
    MAX_PROBLEMS,
    MORE_PROBLEMS,
    Enough,
    Found,
    Loc,
    ProblemList,
    carry,
    kind_of,
    ordered,
)
from paysplit.ledger_refs import AccountCheck, Ids, Practice, check_header, records
from paysplit.ledger_schema import validated
from paysplit.ledger_write import (
    LedgerWriteError,
    dump_jsonl_line,
    dump_ledger,
    to_document,
    write_jsonl,
    write_ledger,
)

__all__ = [
    "DEFAULT_MAX_LEDGER_BYTES",
    "LEDGER_FORMATS",
    "MAX_LEDGER_BYTES_ENV",
    "MAX_PROBLEMS",
    "LedgerWriteError",
    "account_from_document",
    "account_from_line",
    "dump_jsonl_line",
    "dump_ledger",
    "iter_jsonl",
    "ledger_from_document",
    "load_jsonl_ledger",
    "load_ledger",
    "max_ledger_bytes",
    "parse_ledger_text",
    "read_ledger_for_cli",
    "to_document",
    "write_jsonl",
    "write_ledger",
]


# --------------------------------------------------------------------------
# Public API: loading
# --------------------------------------------------------------------------
def load_ledger(path: str | Path) -> Ledger:
    """Read a ledger JSON file; raise :class:`LedgerError` with every problem found.

    A file larger than :func:`max_ledger_bytes` is refused before it is read.
    """
    source = str(path)
    return parse_ledger_text(read_limited(path, source), source)


def parse_ledger_text(text: str | bytes, source: str) -> Ledger:
    """Parse a ledger from JSON text; ``source`` names it in errors (a file name, ``<stdin>``).

    Text longer than :func:`max_ledger_bytes` (bytes, or characters) is refused unparsed.
    """
    limit = max_ledger_bytes()
    if len(text) > limit:
        raise LedgerError(source, [Problem("", too_large(len(text), limit))])
    try:
        doc, found = parse_json(text)
    except Unreadable as error:
        raise LedgerError(source, [Problem("", str(error))]) from None
    return _ledger_from(doc, source, found)


def ledger_from_document(doc: Mapping[str, Any], source: str) -> Ledger:
    """Validate a document that is already parsed (a plugin reader's mapping, a YAML scenario).

    Amounts may be strings, ints, Decimals or :class:`~paysplit.money.JsonNumber`; a float
    is refused (it cannot be an exact amount).
    """
    return _ledger_from(doc, source, [])


def _ledger_from(doc: object, source: str, found: list[Found]) -> Ledger:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source,
            [
                Problem(
                    "",
                    f'a ledger is a JSON object with "format", "practice", "providers" and '
                    f'"accounts", not {kind_of(doc)}',
                )
            ],
        )
    ledger: Ledger | None = None
    problems = ProblemList()
    try:
        carry(found, problems)
        ledger = validated(Ledger, doc, (), problems, {f.where for f in problems})
        ids = Ids("")
        practice = check_header(doc, ids, problems)
        for index, account in records(doc, "accounts"):
            check = AccountCheck(account, ("accounts", index), practice, problems)
            check.collect(ids)
            check.check()
    except Enough:
        ledger = None
    if problems or ledger is None:
        raise LedgerError(source, ordered(doc, problems, ""))
    return ledger


_header_practice: tuple[LedgerHeader, Practice] | None = None


def _practice_of(header: LedgerHeader) -> Practice:
    # Batch runs check 200k accounts against one header: build its lookup sets once.
    global _header_practice
    if _header_practice is None or _header_practice[0] is not header:
        practice = Practice.of((p.id for p in header.providers), (o.id for o in header.offices))
        _header_practice = (header, practice)
    return _header_practice[1]


def account_from_document(
    doc: object, source: str, header: LedgerHeader, path_prefix: str
) -> Account:
    """Validate one account (one pydantic call, one linear pass) against a ledger header.

    Problems are reported with paths starting at ``path_prefix`` (``accounts[5]``); ids
    are checked unique within the account, references against the header's providers
    and offices. Raises :class:`LedgerError` with ``source`` and every problem.
    """
    return _account_from(doc, source, header, path_prefix, [])


ONE_CALL_BYTES = 64 * 1024
"""An account line up to this long is validated in one pydantic call first: a line this
short cannot make more than a few thousand errors, so the record-by-record path (which
bounds them, see :func:`validated`) is only needed to report the problems of a line
that does not validate, or of a longer one."""


def _valid_in_one_call(doc: Mapping[str, Any]) -> Account | None:
    """The account, when one ``model_validate`` call accepts it whole; None otherwise."""
    try:
        return Account.model_validate(doc)
    except ValidationError:
        return None


def _account_from(
    doc: object,
    source: str,
    header: LedgerHeader,
    prefix: str,
    found: list[Found],
    *,
    one_call: bool = False,
) -> Account:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source, [Problem(prefix, f"an account is a JSON object, not {kind_of(doc)}")]
        )
    account: Account | None = None
    problems = ProblemList()
    try:
        carry(found, problems)
        if one_call and not problems:
            account = _valid_in_one_call(doc)
        if account is None:
            account = validated(Account, doc, (), problems, {f.where for f in problems})
        check = AccountCheck(doc, (), _practice_of(header), problems)
        check.collect(Ids(prefix))
        check.check()
    except Enough:
        account = None
    if problems or account is None:
        raise LedgerError(source, ordered(doc, problems, prefix))
    return account


def _header_from(doc: object, source: str, found: list[Found]) -> LedgerHeader:
    if not isinstance(doc, Mapping):
        raise LedgerError(
            source, [Problem("", f"the header line is a JSON object, not {kind_of(doc)}")]
        )
    problems = ProblemList()
    header: LedgerHeader | None = None
    try:
        carry(found, problems)
        skip: set[Loc] = {f.where for f in problems}
        if "accounts" in doc:
            problems.append(
                Found(
                    ("accounts",),
                    "the first line of a JSON Lines ledger is the header (everything but the "
                    "accounts); put each account on a line of its own after it",
                )
            )
            skip.add(("accounts",))
        header = validated(LedgerHeader, doc, (), problems, skip)
        check_header(doc, Ids(""), problems)
    except Enough:
        header = None
    if problems or header is None:
        raise LedgerError(source, ordered(doc, problems, ""))
    return header


def iter_jsonl(
    path: str | Path,
) -> tuple[LedgerHeader, Iterator[tuple[int, Account | LedgerError]]]:
    """Open a JSON Lines ledger: its header now, its accounts one line at a time.

    The header (line 1) must load, or :class:`LedgerError` is raised at once. The iterator
    yields ``(line number, Account)`` or ``(line number, LedgerError)`` for a line that does
    not load, and goes on with the next line; blank lines are skipped. Account ids are
    checked unique across lines; other ids only within their account (an account is the
    unit of allocation, and remembering every id of a 200k-account file costs too much).
    """
    file = Path(path)
    source = str(path)
    limit = max_ledger_bytes()
    try:
        with file.open("rb") as stream:
            first, length = read_line(stream, limit)
    except OSError as error:
        raise LedgerError(source, [Problem("", f"cannot be read: {error.strerror}")]) from None
    if length > limit:
        raise LedgerError(
            f"{source} line 1", [Problem("", too_large(length, limit, "the header line"))]
        )
    try:
        doc, found = parse_json(first.rstrip(b"\r\n"), "the header line ", one_line=True)
    except Unreadable as error:
        raise LedgerError(f"{source} line 1", [Problem("", str(error))]) from None
    header = _header_from(doc, f"{source} line 1", found)
    return header, _accounts_of(file, source, header)


def account_from_line(
    raw: str | bytes,
    source: str,
    header: LedgerHeader,
    path_prefix: str = "",
    line_number: int | None = None,
) -> Account:
    """One account line of a JSON Lines ledger, parsed and validated as :func:`iter_jsonl` does.

    For callers that read lines themselves (batch workers). Raises :class:`LedgerError`
    with ``source`` and every problem of the line.
    """
    where = f"line {line_number} " if line_number is not None else "the line "
    raw = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
    one_call = len(raw) <= ONE_CALL_BYTES
    if one_call:
        # Almost every line is valid: pydantic-core reads it in one call, and only a line
        # that shortcut cannot vouch for is read the exact way below (paysplit.ledger_fast).
        account = fast_account(raw, _practice_of(header), max_bytes=ONE_CALL_BYTES)
        if account is not None:
            return account
    try:
        doc, found = parse_json(raw, where, one_line=True)
    except Unreadable as error:
        raise LedgerError(source, [Problem(path_prefix, str(error))]) from None
    return _account_from(doc, source, header, path_prefix, found, one_call=one_call)


def _accounts_of(
    file: Path, source: str, header: LedgerHeader
) -> Iterator[tuple[int, Account | LedgerError]]:
    account_lines: dict[str, int] = {}
    index = 0
    limit = max_ledger_bytes()
    with file.open("rb") as stream:
        read_line(stream, limit)
        number = 1
        while True:
            raw, length = read_line(stream, limit)
            number += 1
            if not raw:
                break
            if not raw.strip():
                continue
            prefix = f"accounts[{index}]"
            index += 1
            where = f"{source} line {number}"
            if length > limit:
                problem = Problem(prefix, too_large(length, limit, f"line {number}"))
                yield number, LedgerError(where, [problem])
                continue
            try:
                account = account_from_line(raw, where, header, prefix, number)
            except LedgerError as error:
                yield number, error
                continue
            first = account_lines.setdefault(account.id, number)
            if first != number:
                problem = Problem(
                    f"{prefix}.id", f"{account.id} is used twice (also at line {first})"
                )
                yield number, LedgerError(where, [problem])
                continue
            yield number, account


def load_jsonl_ledger(path: str | Path) -> Ledger:
    """Read a whole JSON Lines ledger into one :class:`Ledger` (every bad line reported).

    The whole ledger is then in memory, so the file is held to :func:`max_ledger_bytes` as a
    JSON document is; ``paysplit batch`` streams larger ones.
    """
    limit = max_ledger_bytes()
    with contextlib.suppress(OSError):  # an unreadable file is reported by iter_jsonl
        size = os.stat(path).st_size
        if size > limit:
            raise LedgerError(str(path), [Problem("", too_large(size, limit, "the file"))])
    header, lines = iter_jsonl(path)
    accounts: list[Account] = []
    problems: list[Problem] = []
    for number, item in lines:
        if isinstance(item, LedgerError):
            problems.extend(Problem(p.path, f"{p.message} (line {number})") for p in item.problems)
            if len(problems) >= MAX_PROBLEMS:
                problems.append(Problem("", MORE_PROBLEMS.format(count=len(problems))))
                break
        else:
            accounts.append(item)
    if problems:
        raise LedgerError(str(path), problems)
    fields = {name: getattr(header, name) for name in LedgerHeader.model_fields}
    return Ledger.model_construct(**fields, accounts=tuple(accounts))


def read_ledger_for_cli(path: str | Path, format_name: str = "json") -> Ledger:
    """The ledger a verb was given with ``--ledger PATH --ledger-format NAME``.

    This is the one place that maps a format name to a reader; readers that plugins
    supply (``paysplit_ledger_readers``) are to be looked up here, and their mapping
    validated with :func:`ledger_from_document`, so every verb accepts them at once.
    """
    if format_name == "json":
        return load_ledger(path)
    if format_name == "jsonl":
        return load_jsonl_ledger(path)
    known = ", ".join(LEDGER_FORMATS)
    raise UsageError(f'unknown ledger format "{format_name}"; formats available: {known}')
