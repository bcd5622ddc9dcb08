"""The verbs of the rule language: ``check``, ``fmt`` and ``plugins``.

Thin: they load the plugins, call :mod:`paysplit.compiler`,
:mod:`paysplit.formatter` or :mod:`paysplit.plugin_manager`, and print.
Diagnostics go to stderr, ``--json`` prints one document on stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from paysplit.atomic import write_atomically
from paysplit.cli.common import (
    allowed_plugins,
    common_options,
    disabled_plugins,
    echo,
    echo_err,
    emit_json,
    options,
)
from paysplit.compiler import check_files, read_rule_file
from paysplit.errors import Diagnostic
from paysplit.formatter import format_text
from paysplit.plugin_manager import PluginInfo, PluginSet, load

_PATHS = click.Path(exists=True, path_type=Path)


def rule_paths(given: Iterable[Path]) -> list[Path]:
    """Files as given; a directory stands for the ``*.rules`` files under it."""
    found: list[Path] = []
    for path in given:
        found.extend(sorted(path.rglob("*.rules")) if path.is_dir() else [path])
    return found


def _plugins() -> PluginSet:
    return load(disabled_plugins(), allowed_plugins())


def _ordered(diagnostics: list[Diagnostic], files: list[str]) -> list[Diagnostic]:
    rank = {name: index for index, name in enumerate(files)}
    return sorted(diagnostics, key=lambda d: (rank.get(d.file, len(rank)), d.line, d.column))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- check ------------------------------------------------------------------------
@click.command("check")
@click.argument("rules", nargs=-1, required=True, type=_PATHS)
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 1).")
@common_options
def check(rules: tuple[Path, ...], strict: bool) -> None:
    """Parse, type-check and resolve each rule file against the installed plugins.

    Every error and warning of every file is reported, each with its line,
    column and a caret under the spot. Exit 1 when there are errors (or, with
    --strict, warnings).

    \b
    Examples:
      paysplit check rules/*.rules
      paysplit check rules/smile.rules --strict --json
      paysplit check rules/ --disable-plugin paysplit.cross_doctor
    """
    paths = rule_paths(rules)
    result = check_files(paths, _plugins())
    if options().json:
        emit_json(
            {
                "errors": [d.to_json() for d in result.errors],
                "warnings": [d.to_json() for d in result.warnings],
            }
        )
    else:
        names = [str(p) for p in paths]
        for diagnostic in _ordered([*result.errors, *result.warnings], names):
            echo_err(diagnostic.render())
        verdict = "ok" if not result.errors else "failed"
        echo(
            f"{verdict}: {_plural(len(paths), 'file')} checked, "
            f"{_plural(len(result.errors), 'error')}, {_plural(len(result.warnings), 'warning')}"
        )
    if result.errors or (strict and result.warnings):
        raise click.exceptions.Exit(1)


# --- fmt --------------------------------------------------------------------------
@click.command("fmt")
@click.argument("rules", nargs=-1, required=True, type=_PATHS)
@click.option(
    "--check", "check_only", is_flag=True, help="Write nothing; list the files that would change."
)
@common_options
def fmt(rules: tuple[Path, ...], check_only: bool) -> None:
    """Rewrite rule files in canonical form.

    Settings first, four-space indent, one clause per line in the order
    on / from / to / order / where / others / leftover, comments kept. With
    --check nothing is written and the exit code is 1 when a file would change.
    A file that does not parse is left alone (exit 2).

    \b
    Examples:
      paysplit fmt rules/*.rules
      paysplit fmt --check rules/
    """
    changed: list[str] = []
    unchanged: list[str] = []
    errors: list[Diagnostic] = []
    for path in rule_paths(rules):
        text, problem = read_rule_file(path)
        if problem is not None or text is None:
            errors.extend([problem] if problem is not None else [])
            continue
        formatted, problems = format_text(text, str(path))
        if formatted is None:
            errors.extend(problems)
            continue
        if formatted == text:
            unchanged.append(str(path))
            continue
        changed.append(str(path))
        if not check_only:
            write_atomically(path, (formatted,))
    if options().json:
        emit_json(
            {
                "changed": changed,
                "unchanged": unchanged,
                "written": not check_only,
                "errors": [d.to_json() for d in errors],
            }
        )
    else:
        for diagnostic in errors:
            echo_err(diagnostic.render())
        for name in changed:
            echo(f"{'would reformat' if check_only else 'reformatted'} {name}")
        done = "would be reformatted" if check_only else "reformatted"
        echo(
            f"{_plural(len(changed), 'file')} {done}, {len(unchanged)} already canonical"
            + (f", {_plural(len(errors), 'error')}" if errors else "")
        )
    if errors:
        raise click.exceptions.Exit(2)
    if check_only and changed:
        raise click.exceptions.Exit(1)


# --- plugins ------------------------------------------------------------------------
@click.command("plugins")
@common_options
def plugins() -> None:
    """List the installed plugins and what each supplies.

    For each plugin: its version, whether it is enabled, and the clause
    phrases (pattern, kind, summary), modes, statuses, charge kinds, unearned
    types and ledger readers it declares. Disabled plugins are listed as such.

    \b
    Examples:
      paysplit plugins
      paysplit plugins --json
      PAYSPLIT_DISABLE_PLUGINS=paysplit.cross_doctor paysplit plugins
    """
    loaded = _plugins()
    if options().json:
        emit_json(
            {
                "plugins": [plugin_json(info) for info in loaded.plugins],
                "overrides": [
                    {"what": o.what, "name": o.name, "plugin": o.plugin, "replaced": o.replaced}
                    for o in loaded.overrides
                ],
            }
        )
        return
    table = Table(title="paysplit plugins", show_lines=True)
    for column in ("plugin", "version", "status", "supplies"):
        table.add_column(column, overflow="fold")
    for info in loaded.plugins:
        table.add_row(
            Text(info.name), Text(info.version), Text(info.status), Text("\n".join(_supplies(info)))
        )
    console = Console(width=None if _is_terminal() else 120, highlight=False)
    console.print(table)
    for override in loaded.overrides:
        console.print(
            f"{override.what} {override.name!r} of {override.replaced} is overridden by "
            f"{override.plugin}"
        )


def _is_terminal() -> bool:
    return bool(sys.stdout.isatty())


def plugin_json(info: PluginInfo) -> dict[str, Any]:
    """One plugin as ``paysplit plugins --json`` shows it."""
    vocabulary = info.vocabulary
    return {
        "name": info.name,
        "version": info.version,
        "distribution": info.distribution,
        "builtin": info.builtin,
        "status": info.status,
        "enabled": info.enabled,
        "phrases": [
            {
                "pattern": e.phrase.pattern,
                "kind": e.phrase.kind,
                "summary": e.phrase.summary,
                "example": e.phrase.example,
                "where": e.phrase.where,
                "default": e.phrase.default,
            }
            for e in info.phrases
        ],
        "modes": [
            {"name": m.mode.name, "expansion": m.mode.expansion, "summary": m.mode.summary}
            for m in info.modes
        ],
        "statuses": dict(vocabulary.statuses),
        "kinds": dict(vocabulary.kinds),
        "opt_in_kinds": sorted(vocabulary.opt_in_kinds),
        "unearned_types": dict(vocabulary.unearned_types),
        "ledger_readers": [
            {"name": r.reader.name, "summary": r.reader.summary} for r in info.ledger_readers
        ],
        "note": info.note,
    }


def _supplies(info: PluginInfo) -> list[str]:
    lines = []
    for entry in info.phrases:
        place = {"rule": "", "settings": ", settings", "both": ", rule or settings"}
        keyword = {"source": "from ", "target": "to ", "leftover": "leftover "}.get(entry.kind, "")
        lines.append(
            f"{keyword}{entry.phrase.pattern}  ({entry.kind}{place[entry.phrase.where]})"
            f" - {entry.phrase.summary}"
        )
    lines += [f"mode {m.mode.name} - {m.mode.summary}" for m in info.modes]
    vocabulary = info.vocabulary
    for label, words in (
        ("statuses", vocabulary.statuses),
        ("kinds", vocabulary.kinds),
        ("unearned types", vocabulary.unearned_types),
    ):
        if words:
            lines.append(f"{label}: {', '.join(words)}")
    if vocabulary.opt_in_kinds:
        lines.append(f"opt-in kinds: {', '.join(sorted(vocabulary.opt_in_kinds))}")
    lines += [f"ledger format {r.reader.name} - {r.reader.summary}" for r in info.ledger_readers]
    if info.note:
        lines.append(info.note)
    if info.status == "not allowed":
        lines.append("not loaded: not on the PAYSPLIT_PLUGINS allow-list")
    return lines or ["(nothing)"]


COMMANDS: list[click.Command] = [check, fmt, plugins]
