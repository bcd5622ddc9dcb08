"""``paysplit check``, ``paysplit fmt`` and ``paysplit plugins`` end to end."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from paysplit.cli import main

ROOT = Path(__file__).resolve().parent.parent
STOCK = sorted(str(p) for p in (ROOT / "rules").glob("*.rules"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYSPLIT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("PAYSPLIT_PLUGINS", raising=False)


# --- check ---------------------------------------------------------------------------
def test_check_passes_on_the_stock_rule_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", *STOCK)
    assert code == 0
    assert out.strip() == "ok: 6 files checked, 0 errors, 1 warning"
    assert "card.rules:2:51: warning" in err


def test_check_json_lists_three_mistakes_with_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "three.rules"
    path.write_text(
        "settings:\n"
        "    default rule pay\n"
        "\n"
        "rule pay:\n"
        "    oldest first where status = due_patent\n"
        "    no crossdoctor\n"
        "    leftover credit due patient memo\n"
    )
    code, out, _ = run(capsys, "check", str(path), "--json")
    assert code == 1
    document = json.loads(out)
    assert document["warnings"] == []
    assert [(e["line"], e["column"]) for e in document["errors"]] == [(5, 33), (6, 5), (7, 37)]
    assert [e["message"] for e in document["errors"]] == [
        'unknown status "due_patent"',
        'unknown clause "no crossdoctor"',
        'expected a quoted string after "memo"',
    ]
    assert document["errors"][0] == {
        "file": str(path),
        "line": 5,
        "column": 33,
        "message": 'unknown status "due_patent"',
        "hint": "did you mean due_patient?",
    }


def test_check_prints_the_error_of_the_spec(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "smile.rules").write_text(
        "# Apply Automatically (004) for Smile Dental.\n"
        "settings:\n"
        "    default rule due_patient\n"
        "\n"
        'rule due_patient "Apply to charges DUE PATIENT (oldest first)":\n'
        "    oldest first where status in (due_patient, pending_patient)\n"
        "    no crossdoctor\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "check", "rules/smile.rules")
    assert code == 1
    assert err == (
        'rules/smile.rules:7:5: error: unknown clause "no crossdoctor"\n'
        "    no crossdoctor\n"
        "    ^~~~~~~~~~~~~~\n"
        '  did you mean "no cross-doctor"? (from plugin paysplit.cross_doctor)\n'
    )
    assert out.startswith("failed: 1 file checked, 1 error")


def test_disabling_a_plugin_makes_its_phrases_fail_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    oasis = str(ROOT / "rules" / "oasis.rules")
    code, _, err = run(capsys, "check", oasis, "--disable-plugin", "paysplit.cross_doctor")
    assert code == 1
    assert (
        'setting "no cross-doctor" comes from plugin paysplit.cross_doctor, which is disabled'
        in err
    )
    monkeypatch.setenv("PAYSPLIT_DISABLE_PLUGINS", "paysplit.apply_automatically")
    code, out, _ = run(capsys, "check", "--json", str(ROOT / "rules" / "apply_automatically.rules"))
    assert code == 1
    messages = {e["message"] for e in json.loads(out)["errors"]}
    assert (
        'mode "due insurance" comes from plugin paysplit.apply_automatically, which is disabled'
        in messages
    )


def test_strict_makes_warnings_fail(capsys: pytest.CaptureFixture[str]) -> None:
    card = str(ROOT / "rules" / "card.rules")
    assert run(capsys, "check", card)[0] == 0
    assert run(capsys, "check", card, "--strict")[0] == 1
    assert run(capsys, "check", str(ROOT / "rules" / "oasis.rules"), "--strict")[0] == 0


def test_bad_plugin_names_and_missing_files_are_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "check", STOCK[0], "--disable-plugin", "paysplit.nope")
    assert code == 2 and "installed plugins: paysplit.apply_automatically" in err
    code, _, err = run(capsys, "check", "no/such/file.rules")
    assert code == 2 and "does not exist" in err
    monkeypatch.setenv("PAYSPLIT_PLUGINS", "paysplit.vocabulary,paysplit.match")
    code, out, _ = run(capsys, "check", str(ROOT / "rules" / "card.rules"), "--json")
    assert code == 1
    assert [e["message"] for e in json.loads(out)["errors"]] == ['unknown clause "no cross-doctor"']


def test_hostile_files_get_one_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = {
        "empty.rules": b"",
        "binary.rules": bytes(range(256)),
        "latin1.rules": "rule r: caf\u00e9\n".encode("latin-1"),
        "deep.rules": b"rule r: where " + b"(" * 10_000 + b"a = b" + b")" * 10_000 + b"\n",
        "huge.rules": b"# padding\n" * 1_000_000,
        "code.rules": b"import os\n\n\ndef f():\n    return os.system('rm -rf /')\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code, out, err = run(capsys, "check", "--json", str(tmp_path))
    assert code == 1 and "Traceback" not in err
    errors = json.loads(out)["errors"]
    assert sorted(Path(e["file"]).name for e in errors) == sorted(files)


def test_directories_stand_for_their_rule_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(ROOT / "rules"))
    assert code == 0 and "6 files checked" in out


# --- fmt ------------------------------------------------------------------------------
def test_fmt_check_lists_the_files_that_would_change_then_fmt_writes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    messy = tmp_path / "messy.rules"
    messy.write_text("rule r: match provider, oldest first  # why\n")
    tidy = tmp_path / "tidy.rules"
    tidy.write_text("rule r:\n    oldest first\n")
    code, out, _ = run(capsys, "fmt", "--check", str(messy), str(tidy))
    assert code == 1 and f"would reformat {messy}" in out and str(tidy) not in out.split("\n")[0]
    assert messy.read_text() == "rule r: match provider, oldest first  # why\n"
    code, out, _ = run(capsys, "fmt", str(tmp_path), "--json")
    assert code == 0
    assert json.loads(out) == {
        "changed": [str(messy)],
        "unchanged": [str(tidy)],
        "written": True,
        "errors": [],
    }
    assert messy.read_text() == "rule r:  # why\n    oldest first\n    match provider\n"
    assert run(capsys, "fmt", "--check", str(tmp_path))[0] == 0


def test_fmt_leaves_a_file_with_errors_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.rules"
    broken.write_text("rule r: where\n")
    code, _, err = run(capsys, "fmt", str(broken))
    assert code == 2 and "broken.rules:1:14: error" in err
    assert broken.read_text() == "rule r: where\n"


MESSY = "rule r: match provider, oldest first  # why\n"
TIDY = "rule r:  # why\n    oldest first\n    match provider\n"


def test_fmt_writes_atomically_like_the_ledger_writer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A temporary file in the same folder, fsynced, renamed over the file (keeping its
    mode), then the folder fsynced; through a symbolic link, the file it names."""
    real = tmp_path / "real.rules"
    real.write_text(MESSY)
    real.chmod(0o640)
    link = tmp_path / "link.rules"
    link.symlink_to(real)
    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        fsync(fd)

    def spy_replace(source: Any, target: Any) -> None:
        assert Path(source).parent == tmp_path and Path(source).name.startswith(".real.rules.")
        events.append(f"rename over {Path(target).name}")
        replace(source, target)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    code, out, _ = run(capsys, "fmt", str(link))
    assert code == 0 and f"reformatted {link}" in out
    assert events == ["fsync file", "rename over real.rules", "fsync folder"]
    assert link.is_symlink() and real.read_text() == TIDY
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.rules", "real.rules"]


def test_fmt_that_cannot_write_leaves_the_file_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messy = tmp_path / "messy.rules"
    messy.write_text(MESSY)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    code, _, err = run(capsys, "fmt", str(messy))
    assert code == 2
    assert err == (
        f"error: cannot write {messy}: No space left on device; the old file is unchanged\n"
    )
    assert messy.read_text() == MESSY
    assert [p.name for p in tmp_path.iterdir()] == ["messy.rules"]


# --- plugins ----------------------------------------------------------------------------
def test_plugins_json_lists_each_plugin_and_what_it_supplies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "plugins", "--json", "--disable-plugin", "paysplit.cross_doctor")
    assert code == 0
    plugins = {p["name"]: p for p in json.loads(out)["plugins"]}
    assert plugins["paysplit.match"]["version"] == "0.1.0"
    assert [p["pattern"] for p in plugins["paysplit.match"]["phrases"]] == [
        "match provider",
        "match office",
        "match patient",
    ]
    assert plugins["paysplit.match"]["phrases"][0]["kind"] == "preference"
    assert plugins["paysplit.match"]["phrases"][0]["summary"]
    cross = plugins["paysplit.cross_doctor"]
    assert cross["status"] == "disabled" and cross["enabled"] is False
    assert cross["phrases"][0]["pattern"] == "no cross-doctor"
    modes = plugins["paysplit.apply_automatically"]["modes"]
    assert modes[0]["name"] == "due patient"
    assert "collection" in plugins["paysplit.vocabulary"]["statuses"]
    assert plugins["paysplit.include_debits"]["opt_in_kinds"] == ["debit"]
    defaults = plugins["paysplit.negative_unallocated"]["phrases"][0]
    assert (defaults["where"], defaults["default"]) == ("settings", "negative unallocated block")


def test_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--disable-plugin", "paysplit.cross_doctor")
    assert code == 0
    assert "paysplit.cross_doctor" in out and "disabled" in out
    assert "[memo" in out  # not eaten as markup
    assert "mode due patient" in out and "statuses: due_patient" in out


# --- help ------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["check", "fmt", "plugins"])
def test_every_verb_has_help_with_an_example(capsys: pytest.CaptureFixture[str], verb: str) -> None:
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0
    assert "Example" in out and f"paysplit {verb}" in out
    assert "--json" in out and "--disable-plugin" in out
