"""Fuzzing the ledger reader: zero tracebacks, zero hangs, one clear error with its paths.

Every input goes through :func:`paysplit.ledger_io.parse_ledger_text` (what
``load_ledger`` and every verb do with a file's bytes) under a hard time
bound. The outcome is either a ledger, which must then survive a write and
read back and the invariant checks, or a :class:`~paysplit.errors.LedgerError`
whose problems each have a JSON path and a one-line sentence, at most
``MAX_PROBLEMS`` of them (plus one line saying there are more), that prints on
a terminal and as ``--json`` (no lone surrogates, no control characters that
would forge a line). Anything else (another exception, a hang) fails.

Inputs: random bytes; random text (odd unicode); random JSON values; valid
ledgers (the examples and generated ones) mutated at the JSON level (values
replaced by hostile ones: huge and exotic numbers, lone surrogates, deep
nesting, wrong types, unknown and duplicated keys, deleted keys, millions of
records) and at the byte level (flips, truncation, splices). The nastiest
inputs are kept in ``tests/corpus/ledgers/`` and replayed, a few through the
real ``paysplit`` command. ``PAYSPLIT_FUZZ_SCALE=N`` runs N times as many
(``make fuzz``); each test prints its counts.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_properties import ledgers

from paysplit.cli import main
from paysplit.errors import LedgerError
from paysplit.invariants import check_invariants
from paysplit.ledger import Account, Ledger
from paysplit.ledger_io import (
    MAX_PROBLEMS,
    dump_ledger,
    load_jsonl_ledger,
    load_ledger,
    parse_ledger_text,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "ledgers").glob("*.json"))
CORPUS = Path(__file__).resolve().parent / "corpus" / "ledgers"
PAYSPLIT = str(Path(sys.executable).with_name("paysplit"))
SCALE = float(os.environ.get("PAYSPLIT_FUZZ_SCALE", "1"))
TIME_BOUND = 10.0
"""Seconds one input may take before it counts as a hang (they take milliseconds)."""
_NAME = r"[A-Za-z_$][A-Za-z0-9_$-]*"
_QUOTED = r'\["(?:[^"\\]|\\.)*"\]'
PATH = re.compile(rf"(?:{_NAME}|{_QUOTED})(?:\.{_NAME}|\[\d+\]|{_QUOTED})*")
"""A problem's path: ``accounts[0].charges[3].amount``, a key that is no plain name quoted."""


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Fail an input that runs longer than ``seconds`` (a hang), wherever it is stuck."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"an input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Tally:
    """What the inputs of one test came to."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.slowest = 0.0
        self.bytes = 0

    def line(self, name: str) -> str:
        total = sum(self.counts.values())
        outcomes = ", ".join(f"{k} {n}" for k, n in self.counts.most_common())
        return (
            f"{name}: {total} inputs ({self.bytes / 1e6:.1f} MB), slowest "
            f"{self.slowest * 1000:.0f} ms: {outcomes}"
        )


TALLIES: dict[str, Tally] = {}


def _kind(problem_message: str) -> str:
    """A short name for an error, for the tallies (the message's first words)."""
    words = re.sub(r"[\"'][^\"']*[\"']|\S*\d\S*", "_", problem_message).split()
    return " ".join(w if len(w) < 20 else "_" for w in words[:5])


def check_document(data: bytes | str, tally: Tally | None = None) -> Ledger | LedgerError:
    """Parse one input; check the outcome is a sound ledger or one clear error."""
    started = time.perf_counter()
    with time_bound(TIME_BOUND):
        try:
            outcome: Ledger | LedgerError = parse_ledger_text(data, "fuzz.json")
        except LedgerError as error:
            outcome = error
    elapsed = time.perf_counter() - started
    if isinstance(outcome, Ledger):
        text = dump_ledger(outcome)  # a ledger that loads can be written and read back
        assert parse_ledger_text(text, "again") == outcome
        check_invariants(outcome, history=True)
        kind = "loaded"
    else:
        check_error(outcome)
        kind = _kind(outcome.problems[0].message)
    if tally is not None:
        tally.counts[kind] += 1
        tally.slowest = max(tally.slowest, elapsed)
        tally.bytes += len(data)
    return outcome


def check_error(error: LedgerError) -> None:
    assert error.source == "fuzz.json" or error.source
    assert 1 <= len(error.problems) <= MAX_PROBLEMS + 1
    for problem in error.problems:
        assert problem.message and problem.message.strip() == problem.message
        assert problem.path == "" or PATH.fullmatch(problem.path), problem.path
        for text in (problem.path, problem.message):
            assert not any(c in text for c in "\n\r\x00"), "a problem is one line"
    rendered = error.render()
    assert rendered.startswith("error: fuzz.json cannot be loaded (")
    assert len(rendered.splitlines()) == 1 + len(error.problems)
    assert "Traceback" not in rendered
    rendered.encode("utf-8")  # printable, on a terminal ...
    json.dumps(error.to_json(), ensure_ascii=False).encode("utf-8")  # ... and as --json


# --------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    "",
    "x",
    [],
    {},
    "12.345",
    "1e3",
    "NaN",
    "-0.00",
    "  12.50 ",
    "$12.50",
    "0x10",
    "1_000",
    "١٢٣",  # Arabic-Indic digits
    "２０２５-０１-０１",  # full-width digits
    "2025-02-30",
    "2025-1-1",
    "9999-12-31",
    "2025-01-01T00:00:00+05:00",
    "P1\u202e",
    "\u0000",
    "a\nb",
    "\ufeff",
    "𝟙𝟚.𝟛𝟜",
    "e\u0301",
    "x" * 5000,
    {"extra": {"a": 1}},
    {"id": "ZZ"},
    [{"id": "ZZ"}],
    ["C1", "C1"],
    {"__proto__": {"admin": True}},
    {"$ref": "#/accounts/0"},
]
RAW_NUMBERS = [
    "9" * 5000,
    "-" + "9" * 4301,
    "1e999999999",
    "-1e-999999999",
    "1" + "0" * 400 + ".5",
    "0.1" + "0" * 10000,
    "1E400",
    "-0",
    "0.000000000000000000001",
    "123456789012345678901234567890",
    "NaN",
    "Infinity",
    "-Infinity",
]
RAW_TEXT = [
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"a\\u0000b"',
    '"\\u202e"',
    '"' + "\\u00e9" * 100 + '"',
    "[" * 50 + "]" * 50,
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "[" + ",".join(["{}"] * 20000) + "]",
    "[" + ",".join(["1"] * 20000) + "]",
    "{" + ",".join(f'"k{i}":1' for i in range(5000)) + "}",
]


def _places(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, (*at, index))


def _parent(doc: Any, at: tuple[Any, ...]) -> Any:
    for part in at[:-1]:
        doc = doc[part]
    return doc


MARK = "\x00RAW\x00"


def mutate_document(doc: dict[str, Any], rng: random.Random) -> str:
    """JSON text of ``doc`` after a few hostile edits (some raw, as no JSON encoder writes)."""
    doc = copy.deepcopy(doc)
    raw: list[str] = []
    for _ in range(rng.randint(1, 4)):
        places = [p for p in _places(doc) if p]
        if not places:
            break
        at = rng.choice(places)
        parent = _parent(doc, at)
        action = rng.randrange(9)
        if action <= 2:
            parent[at[-1]] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        elif action == 3:
            raw.append(rng.choice(RAW_NUMBERS + RAW_TEXT))
            parent[at[-1]] = f"{MARK}{len(raw) - 1}"
        elif action == 4 and isinstance(parent, dict):
            del parent[at[-1]]
        elif action == 4:
            parent.pop(at[-1])
        elif action == 5 and isinstance(parent, dict):
            parent[rng.choice(["bogus", "Amount", "amount ", "id", "extra", "accounts"])] = 1
        elif action == 6 and isinstance(parent, list) and parent:
            parent.extend(copy.deepcopy(parent[: rng.randint(1, 3)]))  # duplicate ids
        elif action == 7:
            parent[at[-1]] = {"extra": _deep(rng.randint(20, 40))}
        else:
            parent[at[-1]] = [copy.deepcopy(parent[at[-1]])] * rng.randint(2, 50)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    for index, value in enumerate(raw):
        text = text.replace(json.dumps(f"{MARK}{index}"), value)
    if rng.random() < 0.1:  # a key given twice, as JSON allows and paysplit refuses
        text = text.replace('"id": ', '"id": "DUP", "id": ', 1)
    return text


def _deep(depth: int) -> Any:
    node: Any = 1
    for level in range(depth):
        node = {"a": node} if level % 2 else [node]
    return node


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        action = rng.randrange(6)
        where = rng.randrange(len(out) + 1)
        if action == 0 and out:
            out[min(where, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            del out[where : where + rng.randint(1, 50)]
        elif action == 2:
            out[where:where] = rng.choice(
                [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"{", b"]", b",", b"\\u"]
            )
        elif action == 3:
            start = rng.randrange(len(out) + 1)
            out[where:where] = out[start : start + rng.randint(1, 200)]
        elif action == 4:
            del out[where:]
        else:
            out[where:where] = b"\xef\xbb\xbf"  # a BOM in the middle
    return bytes(out)


SEEDS: list[dict[str, Any]] = [json.loads(path.read_text()) for path in EXAMPLES]


# --------------------------------------------------------------------------
# The fuzz tests
# --------------------------------------------------------------------------
def _run(name: str, capsys: pytest.CaptureFixture[str], body: Any) -> Tally:
    tally = TALLIES.setdefault(name, Tally())
    body(tally)
    with capsys.disabled():
        print("\n" + tally.line(name))
    report = Path(os.environ.get("PAYSPLIT_RELIABILITY_OUT", "build/reliability"))
    with contextlib.suppress(OSError):
        report.mkdir(parents=True, exist_ok=True)
        (report / f"fuzz-ledgers-{name}.txt").write_text(tally.line(name) + "\n")
    return tally


def test_random_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    def body(tally: Tally) -> None:
        @fuzz(400)
        @given(st.binary(max_size=2000))
        def run(data: bytes) -> None:
            assert isinstance(check_document(data, tally), LedgerError)

        run()

    tally = _run("random-bytes", capsys, body)
    assert sum(tally.counts.values()) >= 400 * SCALE * 0.9


def test_random_text(capsys: pytest.CaptureFixture[str]) -> None:
    def body(tally: Tally) -> None:
        @fuzz(300)
        @given(st.text(max_size=500))
        def run(text: str) -> None:
            check_document(text, tally)
            check_document(text.encode("utf-8", "surrogatepass"), tally)

        run()

    _run("random-text", capsys, body)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["paysplit-ledger/1", "USD", "2025-01-01", "12.50", "P1", "payment"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["format", "practice", "providers", "accounts", "id", "patients", "charges",
             "amount", "payments", "splits", "extra", "name", "currency", "x"]
        ),
        inner,
        max_size=5,
    ),
    max_leaves=25,
)  # fmt: skip


def test_random_json_values(capsys: pytest.CaptureFixture[str]) -> None:
    def body(tally: Tally) -> None:
        @fuzz(400)
        @given(JSON)
        def run(value: Any) -> None:
            check_document(json.dumps(value), tally)
            if isinstance(value, dict):
                shaped = {
                    "format": "paysplit-ledger/1",
                    "practice": {"name": "x", "currency": "USD"},
                    "providers": [],
                    "accounts": [value],
                }
                check_document(json.dumps(shaped), tally)

        run()

    _run("json-values", capsys, body)


def test_mutated_example_ledgers(capsys: pytest.CaptureFixture[str]) -> None:
    def body(tally: Tally) -> None:
        @fuzz(600)
        @given(st.sampled_from(SEEDS), st.integers(0, 2**32))
        def run(seed: dict[str, Any], number: int) -> None:
            rng = random.Random(number)
            check_document(mutate_document(seed, rng), tally)

        run()

    tally = _run("mutated-examples", capsys, body)
    assert tally.counts["loaded"] < sum(tally.counts.values()), "mutations break ledgers"


def test_mutated_generated_ledgers(capsys: pytest.CaptureFixture[str]) -> None:
    def body(tally: Tally) -> None:
        @fuzz(300)
        @given(ledgers(), st.integers(0, 2**32))
        def run(document: dict[str, Any], number: int) -> None:
            rng = random.Random(number)
            check_document(mutate_document(document, rng), tally)

        run()

    _run("mutated-generated", capsys, body)


def test_byte_damaged_ledgers(capsys: pytest.CaptureFixture[str]) -> None:
    texts = [path.read_bytes() for path in EXAMPLES]

    def body(tally: Tally) -> None:
        @fuzz(500)
        @given(st.sampled_from(texts), st.integers(0, 2**32))
        def run(data: bytes, number: int) -> None:
            check_document(mutate_bytes(data, random.Random(number)), tally)

        run()

    _run("byte-damaged", capsys, body)


# --------------------------------------------------------------------------
# Big and deep inputs: bounded time and memory, one clear error
# --------------------------------------------------------------------------
HEADER = '{"format":"paysplit-ledger/1","practice":{"name":"x","currency":"USD"},"providers":[],'


def _accounts(items: str) -> str:
    return HEADER + '"accounts":[' + items + "]}"


ONE_ACCOUNT = '{"id":"A","patients":[{"id":"P"}],'
UNKNOWN_FIELDS = ",".join(f'"k{i}":1' for i in range(300_000))
WRONG_CHARGES = ",".join(['{"id":1}'] * 200_000)
DEEP_EXTRA = '"currency":"USD","extra":' + '{"a":' * 500 + "1" + "}" * 500
HUGE_PAYMENT = (
    '{"id":"X","patient":"P","payer":"patient","date":"2025-01-01","type":"payment","amount":'
    + "9" * 100_000
    + "}"
)
BIG: dict[str, tuple[Any, str]] = {
    "a million numbers where accounts go": (
        lambda: _accounts(",".join(["1"] * 1_000_000)),
        "accounts[0]: this must be an object, not a number",
    ),
    "half a million empty accounts": (
        lambda: _accounts(",".join(["{}"] * 500_000)),
        'accounts[0]: "id" is required',
    ),
    "an account with 300,000 unknown fields": (
        lambda: _accounts(ONE_ACCOUNT + UNKNOWN_FIELDS + "}"),
        'accounts[0].k0: unknown field "k0"',
    ),
    "200,000 charges that are all wrong": (
        lambda: _accounts(ONE_ACCOUNT + '"charges":[' + WRONG_CHARGES + "]}"),
        "accounts[0].charges[0].id: 1 is a number; write it as text in quotes",
    ),
    "a plan covering 300,000 numbers": (
        lambda: _accounts(
            ONE_ACCOUNT + '"plans":[{"id":"L","patient":"P","charges":['
            + ",".join(["7"] * 300_000) + "]}]}"
        ),
        "accounts[0].plans[0].charges[0]: 7 is a number; write it as text in quotes",
    ),
    "100,000 duplicate keys": (
        lambda: _accounts(",".join(['{"id":"A","id":"A","patients":[]}'] * 100_000)),
        'accounts[0].id: "id" is given twice in this object',
    ),
    "lists nested 100,000 deep": (
        lambda: "[" * 100_000 + "]" * 100_000,
        "the document is nested too deeply to be a ledger",
    ),
    "an extra object nested 500 deep": (
        lambda: HEADER.replace('"currency":"USD"', DEEP_EXTRA) + '"accounts":[]}',
        "practice.extra: extra is nested more than 32 levels deep",
    ),
    "an amount of 100,000 digits": (
        lambda: _accounts(ONE_ACCOUNT + '"payments":[' + HUGE_PAYMENT + "]}"),
        "accounts[0].payments[0].amount: 9999999999999999999999999999999999999... is too large",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BIG))
def test_huge_and_deep_documents_fail_fast_with_a_bounded_report(name: str) -> None:
    make, first = BIG[name]
    text = make()
    started = time.perf_counter()
    outcome = check_document(text)
    elapsed = time.perf_counter() - started
    assert isinstance(outcome, LedgerError)
    assert str(outcome.problems[0]).startswith(first), str(outcome.problems[0])
    assert len(outcome.problems) <= MAX_PROBLEMS + 1
    if len(outcome.problems) > MAX_PROBLEMS:
        assert "there are more problems than the 1000 listed above" in outcome.problems[-1].message
    assert elapsed < 8.0, f"{name}: {elapsed:.1f} s"


def test_a_ledger_larger_than_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", "64K")
    big = tmp_path / "big.json"
    big.write_text(_accounts(",".join(f'{{"id":"A{n}","patients":[]}}' for n in range(5000))))
    with pytest.raises(LedgerError) as refused:
        load_ledger(big)
    message = refused.value.problems[0].message
    assert message.startswith("the file is 140.6 KB, more than the 64.0 KB paysplit reads whole")
    assert "PAYSPLIT_MAX_LEDGER_BYTES" in message and "`paysplit batch`" in message
    with pytest.raises(LedgerError, match="1 problem"):
        parse_ledger_text(big.read_bytes(), "big.json")
    assert main(["validate", "--ledger", str(big)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {big} cannot be loaded (1 problem):")
    # A device that never ends is read no further than the limit.
    with pytest.raises(LedgerError) as endless:
        load_ledger("/dev/zero")
    assert endless.value.problems[0].message.startswith(
        "the file is larger than the 64.0 KB paysplit reads whole"
    )
    monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", "lots")
    assert main(["validate", "--ledger", str(big)]) == 2
    assert "PAYSPLIT_MAX_LEDGER_BYTES='lots' is not a size" in capsys.readouterr().err


def test_json_lines_are_held_to_the_limit_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paysplit.ledger_io import iter_jsonl

    monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", "2K")
    path = tmp_path / "big.jsonl"
    header = HEADER.rstrip(",") + "}"
    small = '{"id":"A1","patients":[]}'
    huge = '{"id":"A2","patients":[],"extra":{"blob":"' + "x" * 10_000 + '"}}'
    path.write_text("\n".join([header, small, huge, '{"id":"A3","patients":[]}']) + "\n")
    _, lines = iter_jsonl(path)
    seen = list(lines)
    assert [n for n, _ in seen] == [2, 3, 4]
    assert isinstance(seen[0][1], Account)
    error = seen[1][1]
    assert isinstance(error, LedgerError)
    assert str(error.problems[0]).startswith(
        "accounts[1]: line 3 is 9.8 KB, more than the 2.0 KB paysplit reads whole"
    )
    assert isinstance(seen[2][1], Account), "the next line is read as usual"
    with pytest.raises(LedgerError) as whole:
        load_jsonl_ledger(path)  # read whole: the file's size counts
    assert whole.value.problems[0].message.startswith("the file is 9.9 KB, more than the 2.0 KB")


# --------------------------------------------------------------------------
# The corpus of the nastiest inputs
# --------------------------------------------------------------------------
EXPECTED: dict[str, str] = json.loads((CORPUS / "EXPECTED.json").read_text())
"""Corpus file -> the first problem it must report (``path: message`` prefix)."""


def test_the_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.json"}
    assert files == set(EXPECTED)
    assert len(files) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_input_gives_one_clear_error(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = (CORPUS / name).read_bytes()
    outcome = check_document(data)
    assert isinstance(outcome, LedgerError)
    assert str(outcome.problems[0]).startswith(EXPECTED[name]), str(outcome.problems[0])
    # Through the command line, in process: exit 2, the same problems, nothing else.
    assert main(["validate", "--ledger", str(CORPUS / name), "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["errors"][0]["path"] == outcome.problems[0].path
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert captured.err.startswith(f"error: {CORPUS / name} cannot be loaded (")


SUBPROCESS = [
    "surrogate-key.json",
    "huge-integer-amount.json",
    "deep-nesting.json",
    "not-utf8.json",
    "nan-and-infinity.json",
]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_corpus_through_the_real_command(name: str) -> None:
    """No traceback reaches stderr, exit code 2, for every verb that reads a ledger."""
    path = str(CORPUS / name)
    before = (CORPUS / name).read_bytes()
    env = {k: v for k, v in os.environ.items() if k != "PAYSPLIT_DEBUG"}
    for args in (
        ["validate", "--ledger", path],
        ["balances", "--ledger", path, "--json"],
        ["void", "--ledger", path, "--payment", "PAY1", "--in-place"],
    ):
        done = subprocess.run(
            [PAYSPLIT, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert done.stderr.startswith(f"error: {path} cannot be loaded (")
    assert (CORPUS / name).read_bytes() == before, "a ledger that does not load is never written"
