"""What every verb shares: ``--json``, ``--disable-plugin``, output and error handling.

Verbs are thin: they parse options, call the library, and print. Options a
verb takes are declared after the verb and may come in any order
(``paysplit check FILE --json`` and ``paysplit check --json FILE``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from paysplit.errors import LedgerError, PluginError, Problem, UsageError
from paysplit.ledger import Ledger, parse_day
from paysplit.ledger_io import LEDGER_FORMATS, ledger_from_document, read_ledger_for_cli
from paysplit.plugin_manager import PluginSet, load

F = TypeVar("F", bound=Callable[..., Any])


class Terminated(BaseException):
    """SIGTERM (a scheduler stopping the job, ``timeout``), raised in the main thread so
    that whatever was half done is discarded on the way out, as on Ctrl-C."""


class Stops:
    """Ctrl-C and SIGTERM, for the command line's main thread: each becomes an exception
    that discards what was half done, except while a verb holds them (:meth:`hold`):
    a batch renaming its files into place, where stopping half way would leave one run's
    plans beside another's summary. A stop that comes then waits until the command ends,
    which then says so (:attr:`pending`)."""

    def __init__(self) -> None:
        self.held = False
        self.stopping = False
        self.pending: int | None = None

    def reset(self) -> None:
        self.held, self.stopping, self.pending = False, False, None

    def hold(self) -> None:
        self.held = True

    def handle(self, signum: int, frame: object) -> None:
        if self.stopping:
            return  # a second Ctrl-C must not break off the clean-up of the first
        if self.held:
            self.pending = signum
            return
        self.stopping = True
        if signum == signal.SIGTERM:
            raise Terminated
        raise KeyboardInterrupt


STOPS = Stops()


@dataclass
class Options:
    """The options every verb takes, collected by :func:`common_options`."""

    json: bool = False
    disabled_plugins: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _store_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.ensure_object(Options).json = bool(value)
    return value


def _store_disabled(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
    ctx.ensure_object(Options).disabled_plugins = tuple(value)
    return value


def common_options(command: F) -> F:
    """Add ``--json`` and ``--disable-plugin NAME`` (repeatable) to a verb."""
    command = click.option(
        "--disable-plugin",
        "disable_plugin",
        multiple=True,
        metavar="NAME",
        expose_value=False,
        callback=_store_disabled,
        help="Do not load this plugin (repeatable). Also: PAYSPLIT_DISABLE_PLUGINS.",
    )(command)
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_store_json,
        help="Print exactly one JSON document on stdout instead of tables.",
    )(command)
    return command


def options() -> Options:
    """The current verb's common options."""
    return click.get_current_context().ensure_object(Options)


def disabled_plugins() -> list[str]:
    """Plugins disabled by ``--disable-plugin`` and ``PAYSPLIT_DISABLE_PLUGINS``."""
    from_env = [n.strip() for n in os.environ.get("PAYSPLIT_DISABLE_PLUGINS", "").split(",")]
    return [n for n in (*from_env, *options().disabled_plugins) if n]


def allowed_plugins() -> list[str] | None:
    """The ``PAYSPLIT_PLUGINS`` allow-list, or None when every installed plugin may load."""
    raw = os.environ.get("PAYSPLIT_PLUGINS")
    if raw is None:
        return None
    return [n.strip() for n in raw.split(",") if n.strip()]


class DayType(click.ParamType[dt.date]):
    """An option's date, written ``YYYY-MM-DD`` with the digits 0-9 (see
    :func:`paysplit.ledger.parse_day`); ``click.DateTime`` would take other scripts' digits."""

    name = "date"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return parse_day(str(value))
        except ValueError:
            self.fail(f"{str(value)!r} is not a date (write YYYY-MM-DD)", param, ctx)


DAY = DayType()


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def echo(text: str = "") -> None:
    click.echo(text)


def echo_err(text: str) -> None:
    click.echo(text, err=True)


def load_plugins() -> PluginSet:
    """The installed plugins, less the disabled ones, within the allow-list."""
    return load(disabled=disabled_plugins(), allowed=allowed_plugins())


def read_ledger(path: str | Path, format_name: str | None = None) -> Ledger:
    """The ledger a verb was given with ``--ledger PATH [--ledger-format NAME]``.

    ``json`` (the default) and ``jsonl`` are paysplit's own formats; any other
    name is looked up among the ledger readers plugins supply. What a reader
    returns is validated like any ledger document, so its mistakes are
    reported with their paths; a reader that raises is named in the error.
    """
    name = format_name or "json"
    if name in LEDGER_FORMATS:
        return read_ledger_for_cli(path, name)
    readers = load_plugins().ledger_readers
    entry = readers.get(name)
    if entry is None:
        known = ", ".join([*LEDGER_FORMATS, *readers])
        raise UsageError(f'unknown ledger format "{name}"; formats available: {known}')
    try:
        document = entry.reader.read(Path(path))
    except ValueError as exc:
        raise LedgerError(str(path), [Problem("", str(exc))]) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a reader's bug must not become a traceback
        raise PluginError(
            entry.plugin, f'ledger reader "{name}" failed: {type(exc).__name__}: {exc}'
        ) from None
    if not isinstance(document, Mapping):
        raise PluginError(
            entry.plugin,
            f'ledger reader "{name}" returned {type(document).__name__}, not a ledger document',
        )
    return ledger_from_document(document, str(path))
