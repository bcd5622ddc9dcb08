"""Untrusted rule files and ledgers: no code runs, no file is read, no network is reached.

A rule file is data. These tests show that nothing written in one can run
host code, read a file or reach the network:

* text that is Python, shell, SQL, a template, a format string, a path, a URL
  or attribute access gets a syntax or unknown-phrase error, exactly;
* text of that kind that *is* valid (inside a quoted memo or a title, in a
  comment) compiles to inert data, and compiling and running it, printing the
  plan and writing the ledger happen while ``open``, ``socket``,
  ``subprocess``, ``os.system``, ``eval``/``exec``/``compile`` and new imports
  are booby-trapped; and, in a fresh process, while a ``sys.addaudithook``
  records every audited event: none but two benign ones occur;
* the limits on input size, nesting depth, rules per file, clauses per rule,
  errors per file and ledger size hold, with their messages;
* plugins come only from installed entry points: ``PAYSPLIT_PLUGINS`` is an
  allow-list (a plugin left off it is not even imported), an unknown name is
  an error, and a module lying next to the ledger or the rule file, or on
  ``PYTHONPATH``, is never loaded.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paysplit import operations as ops
from paysplit import plugin_manager, source
from paysplit.apply import apply_plan, history_entry, record_history
from paysplit.cli import main
from paysplit.compiler import compile_source
from paysplit.errors import RuleFileError
from paysplit.ledger_io import dump_ledger, load_ledger
from paysplit.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "examples" / "ledgers" / "smith_family.json"
PAYSPLIT = str(Path(sys.executable).with_name("paysplit"))
PLUGINS = plugin_manager.load()

REJECTED: dict[str, str] = {
    'rule r: where __import__("os").system("id") = 1': (
        '1:25: error: expected a comparison (=, !=, <, <=, >, >=, in, not in), found "("'
    ),
    "rule r: where eval('1') = 1": (
        '1:19: error: expected a comparison (=, !=, <, <=, >, >=, in, not in), found "("'
    ),
    'rule r: exec("import os")': '1:9: error: unknown clause "exec("import os")"',
    "import os\nrule r: oldest first": (
        '1:1: error: expected "rule" or "settings" at the start of a line, found "import"'
    ),
    "from os import system\nrule r: oldest first": (
        '1:1: error: expected "rule" or "settings" at the start of a line, found "from"'
    ),
    "rule r: where payment.__class__ = x": '1:15: error: unknown field "payment.__class__"',
    "rule r: where payment.__class__.__mro__ = x": '1:32: error: unexpected character "."',
    "rule r: where charge.__dict__ = x": '1:15: error: unknown field "charge.__dict__"',
    "rule r: order by __globals__": '1:18: error: unknown field "__globals__"',
    "rule r: where amount.__add__ > 1": '1:15: error: unknown field "amount.__add__"',
    "rule r: leftover credit due patient memo {0.__class__}": (
        '1:42: error: unexpected character "{"'
    ),
    "rule r: where code = %(amount)s": '1:22: error: unexpected character "%"',
    "rule r: where code = {{7*7}}": '1:22: error: unexpected character "{"',
    "rule r: $(rm -rf /)": '1:9: error: unexpected character "$"',
    "rule r: `id`": '1:9: error: unexpected character "`"',
    "rule r: where code = '1'; DROP TABLE payments; --": '1:22: error: unexpected character "\'"',
    "rule r: from https://evil.example/rules": (
        '1:19: error: expected "," or end of line, found ":"'
    ),
    "rule r: from file:///etc/passwd": '1:18: error: expected "," or end of line, found ":"',
    "rule r: from ../../etc/passwd": '1:14: error: unexpected character "."',
    'include "/etc/passwd"\nrule r: oldest first': (
        '1:1: error: expected "rule" or "settings" at the start of a line, found "include"'
    ),
    "rule r: from /etc/passwd": '1:14: error: unexpected character "/"',
    "rule r: load plugin evil": '1:9: error: unknown clause "load plugin evil"',
    "settings:\n    plugin os.system": '2:14: error: unexpected character "."',
    "rule r: where code = open('/etc/passwd').read()": (
        '1:26: error: expected ",", "and", "or" or end of line, found "("'
    ),
    "rule r: lambda x: x": '1:17: error: expected "," or end of line, found ":"',
}
"""Hostile rule text -> its first error (``LINE:COL: error: message``, a prefix)."""

ACCEPTED = textwrap.dedent(
    """\
    # __import__("os").system("rm -rf /"); eval(open("/etc/passwd").read())
    settings:
        negative unallocated warn
        default rule pay  # https://evil.example/?q={0.__class__}

    rule pay "{0.__class__.__init__.__globals__} $(id) `id` ../../etc/passwd":
        oldest first where code != "__import__('os').system('id')"
        where payment.method != "file:///etc/passwd" and code not in ("%(x)s", "{{7*7}}")
        leftover credit due patient memo "{0.__class__} __import__(\\"os\\") https://evil.example"
    """
)
"""A rule file whose hostile text is all data: a comment, a title, string values, a memo."""
MEMO = '{0.__class__} __import__("os") https://evil.example'
PAYMENT = {"id": "PAY9", "patient": "P1", "payer": "patient", "provider": "DR1", "amount": "500"}


@pytest.mark.parametrize("text", list(REJECTED))
def test_hostile_rule_text_gets_a_syntax_or_unknown_phrase_error(text: str) -> None:
    ruleset, diagnostics = compile_source(text + "\n", "hostile.rules", PLUGINS)
    assert ruleset is None
    first = diagnostics[0].render().splitlines()[0]
    assert first.startswith(f"hostile.rules:{REJECTED[text]}"), first


INSTALLATION = (str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve()))
"""Where paysplit and its installed plugins live: their metadata (the entry points) is read
when the plugins are loaded, whatever the rule file says."""


def _installed(file: Any) -> bool:
    if not isinstance(file, str | os.PathLike):
        return False
    path = Path(os.fspath(file)).resolve()
    # An editable install's metadata may sit in the source tree (``paysplit.egg-info``),
    # found through the working folder on sys.path: it is still installation metadata.
    metadata = path.parent.suffix in (".dist-info", ".egg-info")
    return metadata or str(path).startswith(INSTALLATION)


class Trap(Exception):
    """Something a rule file must never cause was attempted."""


@contextlib.contextmanager
def booby_trapped(monkeypatch: pytest.MonkeyPatch, allowed_files: set[str]) -> Iterator[list[str]]:
    """Replace every way out of the process with a trap; yield the list of attempts."""
    attempts: list[str] = []
    real_open = builtins.open
    real_import = builtins.__import__

    def trap(name: str) -> Any:
        def sprung(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[:2]!r}")
            raise Trap(name)

        return sprung

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) in allowed_files or _installed(file):
            return real_open(file, *args, **kwargs)
        attempts.append(f"open({file!r})")
        raise Trap("open")

    def guarded_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name not in sys.modules and not name.startswith("paysplit"):
            attempts.append(f"import {name}")
            raise Trap("import")
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", guarded_open)
        patch.setattr(io, "open", guarded_open)
        patch.setattr(builtins, "__import__", guarded_import)
        for module, names in (
            (builtins, ("eval", "exec", "compile", "input")),
            (os, ("system", "popen", "execv", "execve", "execvp", "fork", "spawnv", "remove")),
            (subprocess, ("Popen", "run", "call", "check_output")),
            (socket, ("socket", "create_connection", "getaddrinfo")),
        ):
            for name in names:
                if hasattr(module, name):
                    patch.setattr(module, name, trap(f"{module.__name__}.{name}"))
        yield attempts


def _compile_and_run(rules: RuleSet | None, text: str) -> dict[str, Any]:
    if rules is None:
        rules, diagnostics = compile_source(text, "hostile.rules", PLUGINS)
        assert rules is not None, [d.render() for d in diagnostics]
    book = load_ledger(LEDGER)
    payment = ops.payment_from_json(json.dumps(PAYMENT), book)
    plan = ops.post_payment(book, rules, payment)
    after = record_history(
        apply_plan(book, plan), history_entry(plan, rules, environ={"PAYSPLIT_NOW": "x"})
    )
    return {"plan": plan.dumps(), "ledger": dump_ledger(after), "credits": plan.credits}


def test_hostile_text_that_is_data_compiles_to_data_and_runs_with_every_exit_trapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules, diagnostics = compile_source(ACCEPTED, "hostile.rules", PLUGINS)
    assert rules is not None, [d.render() for d in diagnostics]
    first = _compile_and_run(None, ACCEPTED)  # imports whatever paysplit itself needs, once
    with booby_trapped(monkeypatch, {str(LEDGER)}) as attempts:
        again = _compile_and_run(None, ACCEPTED)
    assert attempts == []
    assert again["plan"] == first["plan"] and again["ledger"] == first["ledger"]
    (credit,) = again["credits"]
    assert credit.memo == MEMO, "the memo is kept as text, verbatim"
    assert MEMO.replace('"', '\\"') in again["ledger"]
    assert rules.rules["pay"].title.startswith("{0.__class__.__init__.__globals__} $(id)")


def test_the_trap_springs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The booby trap is real: each way out is caught (so the test above can fail)."""
    with booby_trapped(monkeypatch, set()) as attempts:
        for attempt in (
            lambda: builtins.open("/etc/passwd"),  # noqa: SIM115
            lambda: os.system("true"),
            lambda: subprocess.run(["true"], check=False),
            lambda: socket.create_connection(("example.com", 80)),
            lambda: builtins.eval("1"),
            lambda: __import__("antigravity"),
        ):
            with pytest.raises(Trap):
                attempt()
    assert len(attempts) == 6


def test_the_command_line_reads_only_the_files_it_is_given_and_its_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "hostile.rules"
    rules.write_text(ACCEPTED)
    ledger = tmp_path / "book.json"
    ledger.write_bytes(LEDGER.read_bytes())
    args = ["post-payment", "--ledger", str(ledger), "--rules", str(rules)]
    args += ["--payment", json.dumps(PAYMENT), "--json", "--explain"]
    monkeypatch.setenv("PAYSPLIT_NOW", "2025-03-01T09:00:00")
    assert main(args) == 0  # warm: plugins and modules loaded by paysplit itself
    capsys.readouterr()
    with booby_trapped(monkeypatch, {str(rules), str(ledger)}) as attempts:
        code = main(args)
    out = capsys.readouterr().out
    assert code == 0 and attempts == [], attempts
    assert json.loads(out)["credits"][0]["memo"] == MEMO


AUDIT = textwrap.dedent(
    """
    import json, sys
    from paysplit import plugin_manager
    from paysplit.compiler import compile_source
    from paysplit.ledger_io import dump_ledger, parse_ledger_text
    from paysplit import operations as ops
    from paysplit.apply import apply_plan

    config = json.loads(sys.argv[1])
    plugins = plugin_manager.load()  # trusted: installed plugins are imported here
    book = parse_ledger_text(open(config["ledger"], "rb").read(), "ledger")
    events = {}

    def hook(event, args):
        events[event] = events.get(event, 0) + 1

    sys.addaudithook(hook)  # from here on, only rule text is new input
    for text in config["texts"]:
        rules, diagnostics = compile_source(text, "hostile.rules", plugins)
        [d.render() for d in diagnostics]
        if rules is not None and "pay" in rules.rules:
            payment = ops.payment_from_json(json.dumps(config["payment"]), book)
            plan = ops.post_payment(book, rules, payment)
            plan.dumps()
            dump_ledger(apply_plan(book, plan))
    print(json.dumps(events))
    """
)


def test_a_fresh_process_compiling_and_running_hostile_rules_makes_no_audited_call(
    tmp_path: Path,
) -> None:
    """``sys.addaudithook`` sees every open, import, exec, compile, socket, subprocess and
    os call of the process. Compiling and running hostile rule files makes none."""
    script = tmp_path / "audit.py"
    script.write_text(AUDIT)
    config = {"ledger": str(LEDGER), "texts": [ACCEPTED, *REJECTED], "payment": PAYMENT}
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    events: dict[str, int] = json.loads(done.stdout)
    assert set(events) <= {"builtins.id", "sys._getframe"}, events


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------
def _first_error(text: str) -> str:
    ruleset, diagnostics = compile_source(text, "big.rules", PLUGINS)
    assert ruleset is None
    return diagnostics[0].render().splitlines()[0]


def test_limit_on_the_size_of_a_rule_file(tmp_path: Path) -> None:
    assert source.MAX_BYTES == 64 * 1024
    text = "# padding\n" * 7000 + "rule r: oldest first\n"
    assert _first_error(text) == (
        "big.rules:1:1: error: the text is larger than 64 KB; a rule file holds a few rules"
    )
    path = tmp_path / "big.rules"
    path.write_text(text)
    with pytest.raises(RuleFileError) as refused:
        plugin_manager_rules([path])
    assert refused.value.diagnostics[0].message == (
        "the file is larger than 64 KB; a rule file holds a few rules"
    )


def plugin_manager_rules(paths: list[Path]) -> RuleSet:
    from paysplit.compiler import load_rules

    return load_rules(paths, PLUGINS)


def test_limit_on_nesting() -> None:
    assert source.MAX_NESTING == 32
    ok = "rule r: where " + "(" * 32 + "balance > 1" + ")" * 32 + "\n"
    assert compile_source(ok, "big.rules", PLUGINS)[0] is not None
    deep = "rule r: where " + "(" * 33 + "balance > 1" + ")" * 33 + "\n"
    assert _first_error(deep) == "big.rules:1:47: error: parentheses are nested more than 32 deep"
    hostile = "rule r: where " + "(" * 100_000
    assert "the text is larger than 64 KB" in _first_error(hostile)


def test_limit_on_rules_per_file() -> None:
    assert source.MAX_RULES == 1000
    text = "".join(f"rule r{i}: oldest first\n" for i in range(1001))
    assert _first_error(text) == "big.rules:1001:1: error: a file may hold at most 1000 rules"
    text = "".join(f"rule r{i}: oldest first\n" for i in range(1000))
    assert compile_source(text, "big.rules", PLUGINS)[0] is not None


def test_limit_on_clauses_per_rule() -> None:
    from paysplit.rule_compiler import MAX_CLAUSES

    assert MAX_CLAUSES == 200
    text = "rule r: " + ", ".join(["include debits"] * 201) + "\n"
    assert "error: a rule may have at most 200 clauses" in _first_error(text)


def test_limit_on_syntax_errors_per_file() -> None:
    from paysplit.parser import MAX_ERRORS

    text = "".join(f"rule r{i}: (\n" for i in range(200))
    _, diagnostics = compile_source(text, "big.rules", PLUGINS)
    assert MAX_ERRORS == 50
    assert 1 <= len(diagnostics) <= MAX_ERRORS + 1


def test_limit_on_ledger_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paysplit.errors import LedgerError, UsageError
    from paysplit.ledger_io import DEFAULT_MAX_LEDGER_BYTES, max_ledger_bytes

    assert DEFAULT_MAX_LEDGER_BYTES == 32 * 1024 * 1024 == max_ledger_bytes()
    for written, size in (("1048576", 1 << 20), ("64M", 64 << 20), ("2g", 2 << 30)):
        monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", written)
        assert max_ledger_bytes() == size
    monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", "\u0661\u0662M")
    with pytest.raises(UsageError) as not_a_size:
        max_ledger_bytes()
    assert str(not_a_size.value) == (
        "PAYSPLIT_MAX_LEDGER_BYTES='١٢M' is not a size: write a number of bytes, or one with "
        "K, M or G (for example 64M)"
    )
    monkeypatch.setenv("PAYSPLIT_MAX_LEDGER_BYTES", "1K")
    with pytest.raises(LedgerError) as refused:
        load_ledger(LEDGER)
    assert refused.value.problems[0].message.startswith(
        "the file is 4.4 KB, more than the 1.0 KB paysplit reads whole"
    )


# --------------------------------------------------------------------------
# Plugins: only installed entry points, and an allow-list
# --------------------------------------------------------------------------
def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYSPLIT_")}
    environ.update(env)
    return subprocess.run(
        [PAYSPLIT, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=120
    )


def test_the_allow_list_loads_only_the_plugins_named(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text("rule r: oldest first, whole charges only, match provider\n")
    allowed = "paysplit.vocabulary,paysplit.match"
    listing = _run(["plugins", "--json"], tmp_path, PAYSPLIT_PLUGINS=allowed)
    assert listing.returncode == 0, listing.stderr
    status = {p["name"]: p["status"] for p in json.loads(listing.stdout)["plugins"]}
    assert {n for n, s in status.items() if s == "enabled"} == set(allowed.split(","))
    assert status["paysplit.whole_charges"] == "not allowed"
    checked = _run(["check", str(rules)], tmp_path, PAYSPLIT_PLUGINS=allowed)
    assert checked.returncode == 1
    assert 'unknown clause "whole charges only"' in checked.stdout + checked.stderr
    everything = _run(["check", str(rules)], tmp_path)
    assert everything.returncode == 0, everything.stdout + everything.stderr


def test_a_plugin_left_off_the_allow_list_is_never_imported() -> None:
    code = (
        "import sys; from paysplit import plugin_manager\n"
        "plugin_manager.load(allowed=['paysplit.vocabulary'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('paysplit.plugins.', "
        "'paysplit_dental'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['paysplit.plugins.vocabulary']"


def test_a_disabled_plugin_is_imported_to_read_its_declarations() -> None:
    """The trust model in docs/reliability.md: --disable-plugin stops a plugin's phrases and
    guards from being used, but paysplit imports it to say where a phrase comes from;
    only the allow-list (or uninstalling) keeps its code from running at all."""
    code = (
        "import sys; from paysplit import plugin_manager\n"
        "plugins = plugin_manager.load(disabled=['paysplit.whole_charges'])\n"
        "print('paysplit.plugins.whole_charges' in sys.modules, "
        "plugins.info('paysplit.whole_charges').status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "disabled"]


def test_an_unknown_name_on_the_allow_list_is_an_error(tmp_path: Path) -> None:
    done = _run(["plugins"], tmp_path, PAYSPLIT_PLUGINS="paysplit.vocabulary,evil")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown plugin 'evil' in PAYSPLIT_PLUGINS")
    assert "Traceback" not in done.stderr


def test_a_module_next_to_the_files_or_on_the_path_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    evil = textwrap.dedent(
        f"""
        open({str(marker)!r}, "w").write("imported")
        from paysplit import hookimpl

        @hookimpl
        def paysplit_phrases():
            return []
        """
    )
    # (A PYTHONPATH that shadows paysplit itself, or a sitecustomize.py on it, is Python's
    # business: whoever sets the environment runs code. Neither is tried here.)
    for name in ("paysplit_evil.py", "evil.py", "plugins.py", "dental_extras.py"):
        (tmp_path / name).write_text(evil)
    rules = tmp_path / "r.rules"
    rules.write_text("rule r: oldest first\n")
    ledger = tmp_path / "book.json"
    ledger.write_bytes(LEDGER.read_bytes())
    for args in (
        ["plugins", "--json"],
        ["check", str(rules)],
        ["apply", "--ledger", str(ledger), "--rules", str(rules), "--payment", "PAY1"],
    ):
        done = _run(args, tmp_path, PYTHONPATH=str(tmp_path), PAYSPLIT_PLUGINS="")
        assert "Traceback" not in done.stderr
        assert not marker.exists(), f"{args[0]} imported a module it was not given"
    listing = _run(["plugins", "--json"], tmp_path)
    names = {p["name"] for p in json.loads(listing.stdout)["plugins"]}
    assert not any("evil" in n for n in names)
