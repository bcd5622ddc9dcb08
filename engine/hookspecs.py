"""The hooks a paysplit plugin may implement: the whole contract with vendors.

A plugin is a module (or object) with functions named like the hooks below,
decorated with ``@paysplit.hookimpl``, and published under the entry-point
group ``paysplit``. paysplit's own policies in ``paysplit.plugins`` are
registered the same way. Every hook is called once per plugin when the plugin
manager starts (``paysplit.plugin_manager.load``), never per payment: they
*declare* what the plugin supplies; the declared objects do the work.

The engine checks every declaration (a phrase whose kind is unknown, a
pattern that does not parse, a build that returns the wrong class) and every
result a declared object produces at run time, and names the plugin in the
error, so one bad plugin never corrupts a ledger.
"""

from __future__ import annotations

import pluggy

from paysplit.phrases import LedgerReader, Mode, Phrase, Vocabulary

PROJECT = "paysplit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def paysplit_phrases() -> list[Phrase]:
    """Clause phrases of kinds scope, filter, order, preference, source, target
    and distribution that this plugin adds to the rule language.

    Called once at start-up. Return a list of :class:`~paysplit.phrases.Phrase`;
    each phrase's ``build`` is later called once per use in a rule file, with
    the parsed arguments, and must return an instance of the base class in
    :mod:`paysplit.policy` for the phrase's kind.
    """


@hookspec
def paysplit_guards() -> list[Phrase]:
    """Guard phrases (kind ``guard``): checks of a whole operation, of each
    proposed split, or of an allocation's outcome.

    Called once at start-up. Each phrase's ``build`` returns a
    :class:`~paysplit.policy.Guard`. A guard written in a rule applies to that
    rule; one written in the settings block (``where="settings"`` or
    ``"both"``) applies to every rule and every manual operation. Settings such
    as ``refund limit {limit:money}`` are guards with a ``default``.
    """


@hookspec
def paysplit_leftover_handlers() -> list[Phrase]:
    """Variants of the ``leftover`` clause (kind ``leftover``), written after the
    word ``leftover`` (``leftover write off under 1.00``).

    Called once at start-up. Each phrase's ``build`` returns a
    :class:`~paysplit.policy.LeftoverHandler`, called once per payment that has
    credit left above zero after a rule ran.
    """


@hookspec
def paysplit_modes() -> list[Mode]:
    """Named presets written ``mode NAME`` that expand to clauses (004's Apply
    Automatically modes).

    Called once at start-up. The expansion is parsed and checked like any rule
    text; errors in it are reported at the ``mode`` clause that used it.
    """


@hookspec
def paysplit_vocabulary() -> Vocabulary:
    """Statuses, charge kinds (and which kinds are opt-in targets) and unearned
    types this plugin adds.

    Called once at start-up. ``paysplit check`` accepts a word in a ``where``
    comparison only when some loaded plugin declares it, and suggests the
    closest declared word otherwise.
    """


@hookspec
def paysplit_ledger_readers() -> list[LedgerReader]:
    """Readers for vendors' exports, chosen with ``--ledger-format NAME``.

    Called once at start-up. A reader turns a file into a mapping in the shape
    of ``paysplit-ledger/1``; paysplit then validates it like any ledger.
    """
