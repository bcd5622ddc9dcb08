"""docs/hooks.md is generated from the hook specifications and cannot drift from them."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from paysplit import hook_docs, hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [
    function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "paysplit_spec")
]


def test_docs_hooks_md_is_what_the_code_generates() -> None:
    written = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert written == hook_docs.render(), (
        "docs/hooks.md is out of date: run `python -m paysplit.hook_docs docs/hooks.md`"
    )


def test_every_hook_is_documented_with_its_docstring() -> None:
    text = hook_docs.render()
    assert len(HOOKS) == 6
    for function in HOOKS:
        doc = inspect.getdoc(function)
        assert doc and "Called once" in doc, function.__name__
        assert f"### `{function.__name__}()" in text
        first_line = doc.splitlines()[0].replace("``", "`")
        assert first_line in text


def test_an_edited_hook_docstring_would_make_the_test_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Path(inspect.getfile(hookspecs)).read_text(encoding="utf-8")
    edited = tmp_path / "hookspecs.py"
    edited.write_text(source.replace("Called once at start-up.", "Called twice.", 1))
    real_getfile = inspect.getfile
    monkeypatch.setattr(
        hook_docs.inspect,
        "getfile",
        lambda module: str(edited) if module is hookspecs else real_getfile(module),
    )
    rendered = hook_docs.render()
    assert "Called twice." in rendered
    assert rendered != (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")


def test_main_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "hooks.md"
    assert hook_docs.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == hook_docs.render()
