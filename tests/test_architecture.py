"""The walls of the layout (README, "Layout"), checked on the source's own imports.

- the core (money, the ledger, the allocation core, plans) imports neither the
  faces built on it (the command line, the batch runner, the pytest plugin) nor
  ``paysplit.plugins``, not even through another module;
- the rule language never imports the allocation core;
- plugins, built-in or a vendor's, use only the public contract: ``hookimpl``
  and the models and types of ``paysplit.ledger``, ``paysplit.figures``,
  ``paysplit.money``, ``paysplit.phrases`` and ``paysplit.policy``.

Every import counts, a function's and a type checker's included: a wall with
a door in it only for type checking, or only at run time, is still a door.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"paysplit": ROOT / "engine", "paysplit.plugins": ROOT / "plugins"}

ALLOCATION_CORE = {
    "paysplit.allocation",
    "paysplit.rule_run",
    "paysplit.rule_run_state",
    "paysplit.rule_targets",
    "paysplit.rule_credit",
    "paysplit.prepared_rules",
    "paysplit.contract_objects",
    "paysplit.manual_allocation",
    "paysplit.target_views",
    "paysplit.plan_splits",
    "paysplit.rule_kernel",
}
"""The modules that decide a plan."""
CORE = ALLOCATION_CORE | {
    "paysplit.money",
    "paysplit.ledger",
    "paysplit.ledger_io",
    "paysplit.ledger_fast",
    "paysplit.ledger_json",
    "paysplit.ledger_refs",
    "paysplit.ledger_schema",
    "paysplit.ledger_problems",
    "paysplit.ledger_write",
    "paysplit.atomic",
    "paysplit.figures",
    "paysplit.clause_calls",
    "paysplit.rule_reasons",
    "paysplit.plans",
    "paysplit.trace_json",
    "paysplit.apply",
}
"""Money, the ledger, the allocation core and plans."""
LANGUAGE = {
    "paysplit.parser",
    "paysplit.compiler",
    "paysplit.expressions",
    "paysplit.charge_predicates",
    "paysplit.checks",
    "paysplit.formatter",
}
PLUGIN_CONTRACT = {
    "paysplit",
    "paysplit.figures",  # AccountFigures: what SourceRequest and Operation hand a clause
    "paysplit.ledger",
    "paysplit.money",
    "paysplit.phrases",
    "paysplit.policy",
}


def _module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _module_files()


def imports_of(path: Path, name: str) -> set[str]:
    """The paysplit modules ``path`` (the module ``name``) imports, wherever the
    import statement is."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "paysplit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] != "paysplit":
                continue
            found.add(module)
            for alias in node.names:  # from paysplit import cli: a module, not a name
                if f"{module}.{alias.name}" in MODULES:
                    found.add(f"{module}.{alias.name}")
    return found


GRAPH = {name: imports_of(path, name) for name, path in MODULES.items()}


def reached_from(start: str) -> dict[str, str]:
    """Every paysplit module ``start`` imports, directly or not, with the module that
    imports it (to show the path a forbidden import takes)."""
    via: dict[str, str] = {}
    pending = [start]
    while pending:
        current = pending.pop()
        for target in GRAPH.get(current, ()):
            if target not in via and target != start:
                via[target] = current
                pending.append(target)
    return via


def path_to(start: str, target: str, via: dict[str, str]) -> str:
    chain = [target]
    while chain[-1] != start:
        chain.append(via[chain[-1]])
    return " -> ".join(reversed(chain))


def test_the_scan_sees_the_modules_the_walls_name() -> None:
    # A renamed or moved module must not slip out of the walls unnoticed.
    for name in CORE | ALLOCATION_CORE | LANGUAGE | PLUGIN_CONTRACT:
        assert name in MODULES, f"{name} is named by a wall but not found in engine/"
    assert "paysplit.cli" in MODULES
    assert any(name.startswith("paysplit.plugins.") for name in MODULES)
    # and it reads imports: the batch's worker does import the allocation core
    assert "paysplit.allocation" in GRAPH["paysplit.batch_worker"]


def test_the_scan_finds_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from paysplit.cli import main\n"
        "def run() -> None:\n    from .rule_run import RuleRun\n    import paysplit.money\n",
        encoding="utf-8",
    )
    assert imports_of(module, "paysplit.late") == {
        "paysplit.cli",
        "paysplit.rule_run",
        "paysplit.money",
    }


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_neither_its_faces_nor_the_builtin_plugins(module: str) -> None:
    faces = ("paysplit.cli", "paysplit.batch", "paysplit.pytest_plugin", "paysplit.plugins")
    via = reached_from(module)
    forbidden = sorted(t for t in via if t.startswith(faces))
    assert not forbidden, "; ".join(path_to(module, t, via) for t in forbidden)


@pytest.mark.parametrize("module", sorted(LANGUAGE))
def test_the_rule_language_never_imports_the_allocation_core(module: str) -> None:
    via = reached_from(module)
    forbidden = sorted(t for t in via if t in ALLOCATION_CORE)
    assert not forbidden, "; ".join(path_to(module, t, via) for t in forbidden)


PLUGIN_FILES = sorted(
    [p for p in (ROOT / "plugins").glob("*.py") if p.name != "__init__.py"]
    + list((ROOT / "examples" / "vendor-plugin" / "src").rglob("*.py")),
)


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_contract(path: Path) -> None:
    used = imports_of(path, "plugin")
    assert used <= PLUGIN_CONTRACT, (
        f"{path.relative_to(ROOT)} imports {sorted(used - PLUGIN_CONTRACT)}; a plugin may "
        f"import only {sorted(PLUGIN_CONTRACT)}"
    )
