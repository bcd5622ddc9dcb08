"""Property tests: generated ledgers and rule files, any sequence of operations, every invariant.

Hypothesis generates a ledger (accounts, patients and dependents, appointments,
charges of every kind and status, attached and unattached adjustments,
payments of both payers with unearned types, appointments and credit notes,
payment plans, ``extra`` data) and a rule file drawn from every stock phrase:
the core clauses of ``docs/rule-language.md`` (triggers, sources, targets, the
four orders and ``order by``, ``where`` expressions over every field) and every
built-in plugin's phrases, modes and settings. Then it runs a sequence of
operations (post-payment, apply to a payment or an account, allocate, refund,
unallocate, void, post-charge), each applied as the CLI applies it (the plan,
then a history entry). After every step:

* every invariant of ``semantics.md`` holds (``check_invariants``, strict about
  negative unallocated and overpaid charges when the settings block them), and
  a step that over-allocates or over-pays carries a warning;
* money is conserved to the cent: what left the payments (their splits) is
  what the charges and installments were paid, and for every payment
  allocated + refunded + unallocated = amount;
* the plan's ``unallocated`` is what the ledger reads back; transfers net to
  zero, one per split that moves posted credit;
* nothing is deleted or reordered; the history names every record the plan
  made (``check_history``);
* the ledger written (``dump_ledger``) and read back (``parse_ledger_text``)
  is the ledger in memory, and the text is stable;
* the plan is deterministic, and for one step per example the CLI is run in
  process with ``--preview`` and then ``--out``: both print the same plan as
  the library, and the file written is the ledger computed here.

``PAYSPLIT_PROPERTY_PROFILE=soak`` (``make soak``) runs tens of thousands of
examples; each test prints how many cases it generated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from paysplit import operations as ops
from paysplit import plugin_manager
from paysplit.apply import apply_plan, history_entry, record_history
from paysplit.cli import main
from paysplit.compiler import compile_source
from paysplit.errors import Blocked, UsageError
from paysplit.figures import AccountFigures
from paysplit.invariants import check_history, check_invariants
from paysplit.ledger import Ledger
from paysplit.ledger_io import dump_ledger, parse_ledger_text
from paysplit.money import format_cents
from paysplit.plans import Plan
from paysplit.rules import RuleSet

NOW = "2025-03-01T09:00:00"
AS_OF = dt.date(2025, 3, 1)
BUILTIN = [
    "paysplit.vocabulary",
    "paysplit.apply_automatically",
    "paysplit.include_debits",
    "paysplit.include_dependents",
    "paysplit.include_account",
    "paysplit.credit_due_to",
    "paysplit.match",
    "paysplit.cross_doctor",
    "paysplit.unattached_adjustments",
    "paysplit.negative_unallocated",
    "paysplit.overpay_charge",
    "paysplit.full_payment",
    "paysplit.whole_charges",
    "paysplit.appointment_credit",
]
PLUGINS = plugin_manager.load(allowed=BUILTIN)

# Shrinking a sequence of operations on a generated ledger can take many minutes; a failure
# is reported unshrunk, with the seed that reproduces it.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
settings.register_profile(
    "paysplit-test",
    max_examples=600,
    deadline=None,
    database=None,
    phases=PHASES,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "paysplit-soak",
    max_examples=20_000,
    deadline=None,
    database=None,
    phases=PHASES,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
PROFILE = (
    "paysplit-soak" if os.environ.get("PAYSPLIT_PROPERTY_PROFILE") == "soak" else ("paysplit-test")
)
"""``PAYSPLIT_PROPERTY_PROFILE=soak`` selects the long profile (``make soak``)."""
SCALE = 1.0 if PROFILE == "paysplit-test" else float(os.environ.get("PAYSPLIT_SOAK_SCALE", "1"))


def profile(fraction: float = 1.0) -> settings:
    """The selected profile, for ``fraction`` of its examples."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(10, int(base.max_examples * fraction * SCALE)))


# --------------------------------------------------------------------------
# Ledgers
# --------------------------------------------------------------------------
STATUSES = (
    "due_patient",
    "pending_patient",
    "due_insurance",
    "pending_payer",
    "collection",
    "collection_agency",
)
KINDS = ("procedure", "procedure", "procedure", "debit", "adjustment")
UNEARNED = (None, "prepayment", "copay", "overpayment")
PROVIDERS = ("DR1", "DR2")
OFFICES = ("MAIN", "EAST")
EXTRA = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _day(offset: int) -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=offset)).isoformat()


cents = st.integers(min_value=1, max_value=50_000)


@st.composite
def ledgers(draw: st.DrawFn) -> dict[str, Any]:
    """A ledger document that loads and keeps every invariant (no splits yet)."""
    accounts = []
    for a in range(draw(st.integers(1, 2))):
        patients: list[dict[str, Any]] = []
        for p in range(draw(st.integers(1, 3))):
            patient: dict[str, Any] = {"id": f"P{a}{p}", "name": f"Patient {a}{p}"}
            if p and draw(st.booleans()):
                patient["guarantor"] = f"P{a}{draw(st.integers(0, p - 1))}"
            patients.append(patient)
        ids = [p["id"] for p in patients]
        appointments = [
            {
                "id": f"AP{a}{n}",
                "patient": draw(st.sampled_from(ids)),
                "provider": draw(st.sampled_from(PROVIDERS)),
            }
            for n in range(draw(st.integers(0, 3)))
        ]
        appointment_ids = [x["id"] for x in appointments]
        charges = []
        for n in range(draw(st.integers(0, 6))):
            amount = draw(cents)
            charge: dict[str, Any] = {
                "id": f"C{a}{n}",
                "patient": draw(st.sampled_from(ids)),
                "provider": draw(st.sampled_from(PROVIDERS)),
                "date": _day(draw(st.integers(0, 420))),
                "kind": draw(st.sampled_from(KINDS)),
                "amount": format_cents(amount),
                "status": draw(st.sampled_from(STATUSES)),
            }
            if draw(st.booleans()):
                charge["office"] = draw(st.sampled_from(OFFICES))
            if appointment_ids and draw(st.booleans()):
                charge["appointment"] = draw(st.sampled_from(appointment_ids))
            if draw(st.integers(0, 3)) == 0:
                charge["insurance_estimate"] = format_cents(draw(st.integers(0, amount)))
            if draw(st.integers(0, 5)) == 0:
                charge["extra"] = draw(st.dictionaries(st.text(max_size=5), EXTRA, max_size=3))
            charges.append(charge)
        adjustments = []
        for n in range(draw(st.integers(0, 2))):
            patient_id = draw(st.sampled_from(ids))
            adjustment: dict[str, Any] = {"id": f"ADJ{a}{n}", "patient": patient_id}
            if charges and draw(st.integers(0, 3)) > 0:
                target = draw(st.sampled_from(charges))
                # Attached: any sign, never taking the charge below zero.
                owed = int(target["amount"].replace(".", ""))
                adjustment["charge"] = target["id"]
                adjustment["amount"] = format_cents(draw(st.integers(-owed // 2, 5_000)) or 100)
            else:
                adjustment["amount"] = format_cents(-draw(cents))
            adjustments.append(adjustment)
        payments = []
        for n in range(draw(st.integers(0, 4))):
            payment: dict[str, Any] = {
                "id": f"PAY{a}{n}",
                "patient": draw(st.sampled_from(ids)),
                "payer": draw(st.sampled_from(["patient", "patient", "insurance"])),
                "date": _day(draw(st.integers(300, 425))),
                "type": "payment",
                "amount": format_cents(draw(cents)),
            }
            provider = draw(st.sampled_from((*PROVIDERS, None)))
            if provider:
                payment["provider"] = provider
            if draw(st.booleans()):
                payment["office"] = draw(st.sampled_from(OFFICES))
            unearned = draw(st.sampled_from(UNEARNED))
            if unearned:
                payment["unearned_type"] = unearned
            if appointment_ids and draw(st.integers(0, 3)) == 0:
                payment["appointment"] = draw(st.sampled_from(appointment_ids))
            if draw(st.integers(0, 4)) == 0:
                payment["credit"] = {
                    "due_to": draw(st.sampled_from(["patient", "insurance"])),
                    "memo": "Account credit",
                    "provider": draw(st.sampled_from((*PROVIDERS, None))),
                    "office": None,
                }
            payments.append(payment)
        plans = []
        if charges and draw(st.booleans()):
            covered = draw(
                st.lists(st.sampled_from([c["id"] for c in charges]), min_size=1, unique=True)
            )
            plans.append(
                {
                    "id": f"PLAN{a}",
                    "patient": draw(st.sampled_from(ids)),
                    "charges": covered,
                    "installments": [
                        {
                            "id": f"I{a}{n}",
                            "due": _day(draw(st.integers(300, 480))),
                            "amount": format_cents(draw(cents)),
                        }
                        for n in range(draw(st.integers(1, 4)))
                    ],
                }
            )
        account: dict[str, Any] = {"id": f"A{a}", "patients": patients}
        for key, items in (
            ("appointments", appointments),
            ("charges", charges),
            ("adjustments", adjustments),
            ("payments", payments),
            ("plans", plans),
        ):
            if items or draw(st.booleans()):
                account[key] = items
        accounts.append(account)
    return {
        "format": "paysplit-ledger/1",
        "practice": {"name": "Generated Dental", "currency": "USD", "as_of": AS_OF.isoformat()},
        "providers": [{"id": p, "name": f"Dr {p}"} for p in PROVIDERS],
        "offices": [{"id": o} for o in OFFICES],
        "accounts": accounts,
    }


# --------------------------------------------------------------------------
# Rule files, from every stock phrase
# --------------------------------------------------------------------------
MONEY_FIELDS = ("amount", "balance", "patient_balance", "insurance_estimate", "payment.amount")
ORDER_FIELDS = ("date", "age", "amount", "balance", "patient_balance", "insurance_estimate", "id")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    shape = draw(st.integers(0, 9))
    field = draw(st.sampled_from(["", "charge."]))
    if shape == 0:
        values = draw(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3, unique=True))
        word = draw(st.sampled_from(["in", "not in"]))
        return f"{field}status {word} ({', '.join(values)})"
    if shape == 1:
        return (
            f"{field}status {draw(st.sampled_from(['=', '!=']))} {draw(st.sampled_from(STATUSES))}"
        )
    if shape == 2:
        money = draw(st.sampled_from(["0", "$12.50", "100", "5.99", "250.00"]))
        return f"{draw(st.sampled_from(MONEY_FIELDS))} {draw(st.sampled_from(COMPARISONS))} {money}"
    if shape == 3:
        return f"age {draw(st.sampled_from(COMPARISONS))} {draw(st.integers(0, 500))} days"
    if shape == 4:
        return f"{field}date {draw(st.sampled_from(COMPARISONS))} {_day(draw(st.integers(0, 420)))}"
    if shape == 5:
        kinds = draw(
            st.lists(
                st.sampled_from(["procedure", "debit", "adjustment"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        )
        return f"kind in ({', '.join(kinds)})"
    if shape == 6:
        return draw(
            st.sampled_from(
                [
                    "payment.payer = patient",
                    "payment.payer = insurance",
                    "provider = payment.provider",
                    "office = payment.office",
                    "patient = payment.patient",
                    "payment.unearned_type = copay",
                    "payment.unearned_type != prepayment",
                    'payment.method = "cash"',
                ]
            )
        )
    if shape == 7:
        return f"provider {draw(st.sampled_from(['=', '!=']))} {draw(st.sampled_from(PROVIDERS))}"
    if shape == 8:
        return f"office in ({', '.join(OFFICES)})"
    return 'code != "D1110"'


def expressions(depth: int = 0) -> st.SearchStrategy[str]:
    if depth >= 2:
        return comparisons()
    inner = expressions(depth + 1)
    return st.one_of(
        comparisons(),
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"({a})", inner),
    )


ORDERS = ("oldest first", "newest first", "largest first", "smallest first")
MODES = ("due patient", "due insurance", "collection", "payment plans")
SCOPES = ("include debits", "include dependents", "include account")
PREFERENCES = ("match provider", "match office", "match patient")
GUARDS = (
    "whole charges only",
    "no cross-doctor",
    "only when payment covers balance",
    "block on unattached negative adjustments",
)
SOURCES = (
    None,
    "from payment",
    "from unallocated",
    "from unearned",
    "from unearned type prepayment",
    "from unearned type copay",
    "from appointment credit",
)
TRIGGERS = (None, "on payment", "on charge added", "on demand")


@st.composite
def leftovers(draw: st.DrawFn) -> str | None:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return None
    if choice == 1:
        return "leftover keep"
    words = ["leftover credit due", draw(st.sampled_from(["patient", "insurance"]))]
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(['memo "Account credit"', 'memo "Say \\"hi\\""'])))
    if draw(st.booleans()):
        words.append(f"provider {draw(st.sampled_from(['same', *PROVIDERS]))}")
    if draw(st.booleans()):
        words.append(f"office {draw(st.sampled_from(['same', *OFFICES]))}")
    return " ".join(words)


@st.composite
def order_clauses(draw: st.DrawFn) -> str | None:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return None
    if choice < 5:
        order = draw(st.sampled_from(ORDERS))
    else:
        keys = draw(st.lists(st.sampled_from(ORDER_FIELDS), min_size=1, max_size=3, unique=True))
        order = "order by " + " then ".join(
            f"{k}{draw(st.sampled_from(['', ' asc', ' desc']))}" for k in keys
        )
    if draw(st.integers(0, 3)) == 0:
        order += f" where {draw(expressions(1))}"
    return order


@dataclass
class RuleSpec:
    name: str
    clauses: list[str]
    pooled: bool
    trigger: str | None


@st.composite
def rule_specs(draw: st.DrawFn, name: str) -> RuleSpec:
    trigger = draw(st.sampled_from(TRIGGERS))
    source = draw(st.sampled_from(SOURCES))
    mode = draw(st.sampled_from((None, None, *MODES)))
    target = draw(st.sampled_from((None, "to charges", "to installments")))
    if mode == "payment plans" and target == "to charges":
        target = None
    if mode is not None and mode != "payment plans" and target == "to installments":
        target = None
    clauses = [c for c in (trigger, source, target) if c]
    if mode:
        clauses.append(f"mode {mode}")
    order = draw(order_clauses())
    if order:
        clauses.append(order)
    for _ in range(draw(st.integers(0, 2))):
        clauses.append(f"where {draw(expressions())}")
    for group in (SCOPES, PREFERENCES, GUARDS):
        clauses += draw(st.lists(st.sampled_from(group), max_size=2, unique=True))
    leftover = draw(leftovers())
    if leftover:
        clauses.append(leftover)
    if not clauses:
        clauses.append("oldest first")
    clauses = draw(st.permutations(clauses))
    pooled = source is not None and source not in ("from payment",)
    return RuleSpec(name, list(clauses), pooled, trigger)


@dataclass
class RuleFile:
    text: str
    specs: list[RuleSpec]
    negative: str
    overpay: str


@st.composite
def rule_files(draw: st.DrawFn) -> RuleFile:
    names = [f"rule_{n}" for n in range(draw(st.integers(1, 4)))]
    specs = [draw(rule_specs(name)) for name in names]
    negative = draw(st.sampled_from(["block", "warn", "allow", None]))
    overpay = draw(st.sampled_from(["block", "warn", "allow", None]))
    lines = []
    settings_lines = []
    if negative:
        settings_lines.append(f"negative unallocated {negative}")
    if overpay:
        settings_lines.append(f"overpay charge {overpay}")
    if draw(st.booleans()):
        settings_lines.append(f"default unearned type {draw(st.sampled_from(UNEARNED[1:]))}")
    if draw(st.booleans()):
        settings_lines.append(f"default rule {draw(st.sampled_from(names))}")
    settings_lines += draw(
        st.lists(
            st.sampled_from(["no cross-doctor", "block on unattached negative adjustments"]),
            max_size=2,
            unique=True,
        )
    )
    if settings_lines:
        lines += ["# generated", "settings:", *(f"    {s}" for s in settings_lines), ""]
    for spec in specs:
        title = draw(st.sampled_from(["", ' "A title"', ' "Quote \\" and \\\\"']))
        if draw(st.booleans()):
            lines.append(f"rule {spec.name}{title}: {', '.join(spec.clauses)}")
        else:
            lines.append(f"rule {spec.name}{title}:")
            for clause in spec.clauses:
                comment = "  # why" if draw(st.integers(0, 6)) == 0 else ""
                lines.append(f"    {clause}{comment}")
        lines.append("")
    return RuleFile("\n".join(lines), specs, negative or "block", overpay or "block")


def compile_rules(rule_file: RuleFile) -> RuleSet:
    ruleset, diagnostics = compile_source(rule_file.text, "generated.rules", PLUGINS)
    errors = [d.render() for d in diagnostics if d.severity == "error"]
    assert ruleset is not None and not errors, rule_file.text + "\n" + "\n".join(errors)
    return ruleset


# --------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------
@dataclass
class Step:
    """One operation, as the library call and as the CLI arguments."""

    verb: str
    run: Callable[[Ledger, RuleSet], Plan]
    args: list[str]
    uses_rules: bool = True


def _ids(ledger: Ledger, kind: str) -> list[str]:
    return [r.id for a in ledger.accounts for r in getattr(a, kind)]


def _installments(ledger: Ledger) -> list[str]:
    return [i.id for a in ledger.accounts for p in a.plans for i in p.installments]


def _amount_text(draw: st.DrawFn, ceiling: int) -> str:
    """An amount near what is available (often just at it, sometimes above)."""
    choice = draw(st.integers(0, 4))
    if choice == 0 or ceiling <= 0:
        return format_cents(draw(cents))
    if choice == 1:
        return format_cents(ceiling)
    if choice == 2:
        return format_cents(ceiling + draw(st.integers(1, 2_000)))
    return format_cents(draw(st.integers(1, ceiling)))


def _unallocated(ledger: Ledger, payment_id: str) -> int:
    for account in ledger.accounts:
        for payment in account.payments:
            if payment.id == payment_id:
                return AccountFigures.of(account).unallocated(payment)
    return 0


@st.composite
def steps(draw: st.DrawFn, ledger: Ledger, rules: RuleFile, serial: int) -> Step:
    """One operation on the ledger as it is now."""
    payments = _ids(ledger, "payments")
    charges = _ids(ledger, "charges")
    splits = [s.id for a in ledger.accounts for s in a.splits if s.amount > 0]
    patients = _ids(ledger, "patients")
    accounts = [a.id for a in ledger.accounts]
    rule_names = [s.name for s in rules.specs]
    pooled = [s.name for s in rules.specs if s.pooled]
    direct = [s.name for s in rules.specs if not s.pooled]
    verbs = ["post-payment", "post-charge", "void"]
    if payments:
        verbs += ["apply-payment", "allocate", "allocate", "refund", "refund"]
    if pooled:
        verbs += ["apply-account", "apply-account"]
    if splits:
        verbs += ["unallocate", "unallocate", "unallocate"]
    verb = draw(st.sampled_from(verbs))
    if verb == "post-payment":
        doc: dict[str, Any] = {
            "id": f"NP{serial}",
            "patient": draw(st.sampled_from(patients)),
            "payer": draw(st.sampled_from(["patient", "patient", "insurance"])),
            "amount": format_cents(draw(cents)),
        }
        provider = draw(st.sampled_from((*PROVIDERS, None)))
        if provider:
            doc["provider"] = provider
        appointments = _ids(ledger, "appointments")
        if appointments and draw(st.integers(0, 3)) == 0:
            doc["appointment"] = draw(st.sampled_from(appointments))
        if draw(st.booleans()):
            doc["unearned_type"] = draw(st.sampled_from(UNEARNED[1:]))
        rule = draw(st.sampled_from([None, *direct, *rule_names]))
        text = json.dumps(doc)
        return Step(
            "post-payment",
            lambda book, rs: ops.post_payment(book, rs, ops.payment_from_json(text, book), rule),
            ["--payment", text] + (["--rule", rule] if rule else []),
        )
    if verb == "post-charge":
        account = draw(st.sampled_from(ledger.accounts))
        appointments = [x.id for x in account.appointments]
        doc = {
            "id": f"NC{serial}",
            "patient": draw(st.sampled_from([p.id for p in account.patients])),
            "provider": draw(st.sampled_from(PROVIDERS)),
            "amount": format_cents(draw(cents)),
            "status": draw(st.sampled_from(STATUSES)),
            "kind": draw(st.sampled_from(KINDS)),
        }
        if appointments and draw(st.booleans()):
            doc["appointment"] = draw(st.sampled_from(appointments))
        text = json.dumps(doc)
        return Step(
            "post-charge",
            lambda book, rs: ops.post_charge(book, rs, ops.charge_from_json(text, book)),
            ["--charge", text],
        )
    if verb == "void":
        payment_id = draw(st.sampled_from(payments or ["NOPE"]))
        return Step(
            "void",
            lambda book, rs: ops.void(book, payment_id, "generated"),
            ["--payment", payment_id, "--reason", "generated"],
            uses_rules=False,
        )
    if verb == "apply-payment":
        payment_id = draw(st.sampled_from(payments))
        rule = draw(st.sampled_from(direct or rule_names))
        return Step(
            "apply",
            lambda book, rs: ops.apply_rule(book, rs, rule, payment_id=payment_id),
            ["--rule", rule, "--payment", payment_id],
        )
    if verb == "apply-account":
        account_id = draw(st.sampled_from(accounts))
        rule = draw(st.sampled_from(pooled))
        selection: list[str] | None = None
        account = ledger.account(account_id)
        assert account is not None
        choices = [c.id for c in account.charges] + [
            i.id for p in account.plans for i in p.installments
        ]
        if choices and draw(st.integers(0, 2)) == 0:
            selection = draw(
                st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True)
            )
        return Step(
            "apply",
            lambda book, rs: ops.apply_rule(
                book, rs, rule, account_id=account_id, charge_ids=selection
            ),
            ["--rule", rule, "--account", account_id]
            + (["--charges", ",".join(selection)] if selection else []),
        )
    if verb == "allocate":
        payment_id = draw(st.sampled_from(payments))
        installments = _installments(ledger)
        appointments = _ids(ledger, "appointments")
        kinds = ["charge"] * bool(charges) + ["installment"] * bool(installments)
        kinds += ["appointment"] * bool(appointments)
        if not kinds:
            kinds = ["charge"]
        kind = draw(st.sampled_from(kinds))
        target = draw(
            st.sampled_from(
                {
                    "charge": charges or ["NOPE"],
                    "installment": installments,
                    "appointment": appointments,
                }[kind]
            )
        )
        amount = _amount_text(draw, _unallocated(ledger, payment_id))
        keyword = {
            "charge": "charge_id",
            "installment": "installment_id",
            "appointment": "appointment_id",
        }[kind]
        return Step(
            "allocate",
            lambda book, rs: ops.allocate_manual(
                book, rs, payment_id, amount=amount, **{keyword: target}
            ),
            ["--payment", payment_id, f"--{kind}", target, "--amount", amount],
        )
    if verb == "refund":
        if draw(st.booleans()):
            payment_id = draw(st.sampled_from(payments))
            amount = _amount_text(draw, _unallocated(ledger, payment_id))
            if draw(st.booleans()):
                amount = "-" + amount  # 000 enters it negative
            return Step(
                "refund",
                lambda book, rs: ops.refund(book, rs, payment_id=payment_id, amount=amount),
                ["--payment", payment_id, "--amount", amount],
            )
        patient_id = draw(st.sampled_from(patients))
        amount = _amount_text(draw, 5_000)
        return Step(
            "refund",
            lambda book, rs: ops.refund(book, rs, patient_id=patient_id, amount=amount),
            ["--patient", patient_id, "--amount", amount],
        )
    split_id = draw(st.sampled_from(splits))
    partial = draw(st.sampled_from([None, "0.01", "1.00", "5.00"]))
    return Step(
        "unallocate",
        lambda book, rs: ops.unallocate(book, split_id, partial),
        ["--split", split_id] + (["--amount", partial] if partial else []),
        uses_rules=False,
    )


# --------------------------------------------------------------------------
# The checks after every step
# --------------------------------------------------------------------------
def _figures(ledger: Ledger) -> dict[str, AccountFigures]:
    return {a.id: AccountFigures.of(a) for a in ledger.accounts}


def check_conservation(ledger: Ledger) -> None:
    """What left the payments is what the charges and installments were paid, to the cent."""
    for account in ledger.accounts:
        figures = AccountFigures.of(account)
        allocated = sum(
            figures.allocated(p) for p in account.payments if p.type == "payment" and not p.void
        )
        paid_charges = sum(
            c.amount + figures.adjustment_total_by_charge.get(c.id, 0) - figures.balance(c)
            for c in account.charges
        )
        assert allocated == paid_charges, (account.id, allocated, paid_charges)
        paid_installments = sum(
            i.amount - figures.installment_balance(i) for p in account.plans for i in p.installments
        )
        to_installments = sum(
            s.amount
            for s in account.splits
            if s.installment is not None and not figures.payments[s.payment].void
        )
        assert paid_installments == to_installments
        for payment in account.payments:
            if payment.void or payment.type == "refund":
                assert figures.unallocated(payment) == 0
                continue
            assert (
                figures.allocated(payment)
                + figures.refunded(payment)
                + figures.unallocated(payment)
                == payment.amount
            )


def check_step(before: Ledger, after: Ledger, plan: Plan, rules: RuleFile) -> None:
    """Everything that must hold after one applied plan."""
    strict_negative = rules.negative == "block"
    strict_overpay = rules.overpay == "block"
    problems = [
        str(p)
        for p in check_invariants(
            after,
            allow_negative_unallocated=not strict_negative,
            allow_overpaid_charges=not strict_overpay,
        )
    ]
    assert problems == [], problems
    assert check_history(after) == [], [str(p) for p in check_history(after)]
    check_conservation(after)
    old, new = _figures(before), _figures(after)
    # A step that takes a charge or a payment further below zero says so.
    for account in after.accounts:
        figures = new[account.id]
        was = old.get(account.id)
        for charge in account.charges:
            balance = figures.balance(charge)
            earlier = was.balance(charge) if was and charge.id in was.charges else charge.amount
            if balance < 0 and balance < earlier:
                assert not strict_overpay and plan.warnings, (charge.id, plan.warnings)
        for payment in account.payments:
            left = figures.unallocated(payment)
            earlier = (
                was.unallocated(payment) if was and payment.id in was.payments else payment.amount
            )
            if left < 0 and left < earlier:
                assert not strict_negative and plan.warnings, (payment.id, plan.warnings)
    # The plan's prediction is what the ledger reads back.
    for payment_id, predicted in plan.unallocated.items():
        home = next(a for a in after.accounts if any(p.id == payment_id for p in a.payments))
        payment = new[home.id].payments[payment_id]
        assert new[home.id].unallocated(payment) == predicted, payment_id
    # Transfers: two legs netting to zero, one per split that moves posted credit.
    by_split = {s.transfer: s for s in plan.splits if s.transfer is not None}
    assert len(by_split) == sum(1 for s in plan.splits if s.transfer is not None)
    assert {t.id for t in plan.transfers} == set(by_split)
    for transfer in plan.transfers:
        assert sum(leg.amount for leg in transfer.legs) == 0
        split = by_split[transfer.id]
        assert transfer.from_payment == split.payment
        assert [leg.amount for leg in transfer.legs if leg.amount > 0] == [split.amount]
    for split in plan.splits:
        assert split.amount != 0
        if split.amount < 0:
            assert split.reverses is not None
    # Nothing deleted, nothing reordered; only payments the plan names change.
    changed = {c.payment for c in plan.credits} | {v.payment for v in plan.voids}
    for old_account, new_account in zip(before.accounts, after.accounts, strict=True):
        for kind in ("patients", "appointments", "charges", "adjustments", "plans", "splits"):
            old_records = getattr(old_account, kind)
            assert getattr(new_account, kind)[: len(old_records)] == old_records, kind
        assert len(new_account.payments) >= len(old_account.payments)
        for was_payment, now_payment in zip(
            old_account.payments, new_account.payments[: len(old_account.payments)], strict=True
        ):
            assert was_payment.id == now_payment.id
            if was_payment.id not in changed:
                assert was_payment == now_payment
            else:
                assert now_payment.amount == was_payment.amount
                assert was_payment.void <= now_payment.void
    # Written and read back: the same ledger, and the same text again.
    text = dump_ledger(after)
    again = parse_ledger_text(text, "round-trip")
    assert again == after
    assert dump_ledger(again) == text


@dataclass
class Stats:
    examples: int = 0
    rule_files: int = 0
    rules: int = 0
    clauses: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    cli_runs: int = 0
    records: int = 0
    started: float = field(default_factory=time.perf_counter)

    def report(self, name: str) -> str:
        applied = sum(n for (k, n) in self.outcomes.items() if k.endswith(":applied"))
        lines = [
            f"{name}: {self.examples} generated cases in "
            f"{time.perf_counter() - self.started:.1f} s "
            f"(profile {PROFILE}): {self.rule_files} rule files ({self.rules} rules, "
            f"{self.clauses} clauses), {sum(self.steps.values())} operations "
            f"({applied} applied), {self.records} ledger records, {self.cli_runs} CLI "
            "preview/write pairs",
            "  operations: " + ", ".join(f"{k} {n}" for k, n in sorted(self.steps.items())),
            "  outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items())),
        ]
        return "\n".join(lines)


def _cli(
    step: Step, ledger_file: Path, rules_file: Path, out_file: Path, preview: bool
) -> tuple[int, dict[str, Any]]:
    # Run from the rules' folder, so that clause locations read "generated.rules:LINE:COL"
    # as in the rule set compiled here.
    args = [step.verb, "--ledger", str(ledger_file)]
    if step.uses_rules:
        args += ["--rules", rules_file.name]
    args += [*step.args, "--json"]
    args += ["--preview"] if preview else ["--out", str(out_file)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(rules_file.parent),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        code = main(args)
    assert "Traceback" not in stderr.getvalue()
    document = json.loads(stdout.getvalue()) if stdout.getvalue().strip() else {}
    return code, document


def _without_preview(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k != "preview"}


def run_sequence(
    data: st.DataObject, stats: Stats, folder: Path, *, max_steps: int, cli_share: float
) -> None:
    document = data.draw(ledgers(), label="ledger")
    ledger = parse_ledger_text(json.dumps(document), "generated.json")
    assert check_invariants(ledger) == []
    check_conservation(ledger)
    rule_file = data.draw(rule_files(), label="rules")
    rules = compile_rules(rule_file)
    stats.examples += 1
    stats.rule_files += 1
    stats.rules += len(rules.rules)
    stats.clauses += sum(len(r.clauses) for r in rules.rules.values())
    rules_path = folder / "generated.rules"
    rules_path.write_text(rule_file.text)
    cli_step = (
        data.draw(st.integers(0, max_steps - 1), label="cli step")
        if data.draw(st.floats(0, 1), label="cli?") < cli_share
        else -1
    )
    for number in range(data.draw(st.integers(1, max_steps), label="steps")):
        step = data.draw(steps(ledger, rule_file, number), label=f"step {number}")
        key = step.verb + (" (account)" if "--account" in step.args else "")
        stats.steps[key] += 1
        try:
            plan = step.run(ledger, rules)
        except Blocked:
            stats.outcomes[f"{step.verb}:blocked"] += 1
            continue
        except UsageError:
            stats.outcomes[f"{step.verb}:refused"] += 1
            if number == cli_step:
                _cli_refuses_too(step, ledger, folder)
                stats.cli_runs += 1
            continue
        assert plan.dumps() == step.run(ledger, rules).dumps(), "the same input, the same plan"
        if plan.blocked is not None:
            stats.outcomes[f"{step.verb}:blocked"] += 1
            assert not (plan.splits or plan.voids or plan.credits)
            # A blocked post-payment (post-charge) still shows what it would have posted.
            assert step.verb == "post-payment" or not plan.payments
            assert step.verb == "post-charge" or not plan.charges
            with pytest.raises(UsageError):
                apply_plan(ledger, plan)
            continue
        entry = history_entry(
            plan, rules if step.uses_rules else None, environ={"PAYSPLIT_NOW": NOW}
        )
        after = record_history(apply_plan(ledger, plan), entry)
        check_step(ledger, after, plan, rule_file)
        stats.outcomes[f"{step.verb}:applied"] += 1
        if number == cli_step:
            _cli_agrees(step, ledger, after, plan, folder)
            stats.cli_runs += 1
        ledger = after
    stats.records += sum(
        len(getattr(a, kind))
        for a in ledger.accounts
        for kind in ("patients", "appointments", "charges", "adjustments", "payments", "splits")
    )


def _cli_agrees(step: Step, before: Ledger, after: Ledger, plan: Plan, folder: Path) -> None:
    """--preview and --out print the library's plan, and --out writes the ledger computed here."""
    ledger_file, out_file = folder / "ledger.json", folder / "out.json"
    ledger_file.write_text(dump_ledger(before))
    out_file.unlink(missing_ok=True)
    code, previewed = _cli(step, ledger_file, folder / "generated.rules", out_file, True)
    assert code == 0 and previewed["preview"] is True
    assert not out_file.exists(), "a preview writes nothing"
    code, written = _cli(step, ledger_file, folder / "generated.rules", out_file, False)
    assert code == 0
    assert (
        _without_preview(previewed) == _without_preview(written) == _without_preview(plan.to_json())
    )
    written_text, expected_text = out_file.read_text(), dump_ledger(after)
    assert written_text == expected_text, "".join(
        difflib.unified_diff(expected_text.splitlines(True), written_text.splitlines(True))
    )
    assert parse_ledger_text(out_file.read_bytes(), "out") == after


def _cli_refuses_too(step: Step, before: Ledger, folder: Path) -> None:
    ledger_file, out_file = folder / "ledger.json", folder / "out.json"
    ledger_file.write_text(dump_ledger(before))
    out_file.unlink(missing_ok=True)
    code, document = _cli(step, ledger_file, folder / "generated.rules", out_file, False)
    assert code == 2 and set(document) == {"error"}
    assert not out_file.exists()


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------
@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSPLIT_NOW", NOW)
    monkeypatch.setenv("PAYSPLIT_PLUGINS", ",".join(BUILTIN))
    monkeypatch.delenv("PAYSPLIT_DISABLE_PLUGINS", raising=False)


def _finish(stats: Stats, name: str, capsys: pytest.CaptureFixture[str], minimum: int) -> None:
    with capsys.disabled():
        print("\n" + stats.report(name))
    report = Path(os.environ.get("PAYSPLIT_RELIABILITY_OUT", "build/reliability"))
    with contextlib.suppress(OSError):
        report.mkdir(parents=True, exist_ok=True)
        (report / f"{name}.txt").write_text(stats.report(name) + "\n")
    assert stats.examples >= minimum, "Hypothesis generated far fewer cases than asked"


def test_any_sequence_of_operations_keeps_every_invariant(
    quiet_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = Stats()

    @given(st.data())
    @profile()
    def run(data: st.DataObject) -> None:
        run_sequence(data, stats, tmp_path, max_steps=8, cli_share=0.5)

    run()
    _finish(stats, "properties", capsys, minimum=int(profile().max_examples * 0.9))
    for verb in (
        "post-payment",
        "post-charge",
        "apply",
        "allocate",
        "refund",
        "unallocate",
        "void",
    ):
        assert stats.outcomes[f"{verb}:applied"] > 0, f"no {verb} was ever applied"
    assert stats.cli_runs > 0


def test_generated_rule_files_compile_and_round_trip_through_fmt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every combination of stock phrases the generator makes is a valid rule file, and the
    canonical form compiles to the same rules."""
    from paysplit.formatter import format_text

    stats = Stats()

    @given(rule_files())
    @profile(0.5)
    def run(rule_file: RuleFile) -> None:
        rules = compile_rules(rule_file)
        stats.examples += 1
        stats.rules += len(rules.rules)
        stats.clauses += sum(len(r.clauses) for r in rules.rules.values())
        formatted, problems = format_text(rule_file.text)
        assert formatted is not None, [d.render() for d in problems]
        again, diagnostics = compile_source(formatted, "generated.rules", PLUGINS)
        assert again is not None, [d.render() for d in diagnostics]
        assert {n: len(r.clauses) for n, r in again.rules.items()} == {
            n: len(r.clauses) for n, r in rules.rules.items()
        }
        assert format_text(formatted)[0] == formatted

    run()
    stats.rule_files = stats.examples
    _finish(stats, "rule-files", capsys, minimum=int(profile(0.5).max_examples * 0.9))


def test_ledgers_round_trip_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    stats = Stats()

    @given(ledgers())
    @profile(0.5)
    def run(document: dict[str, Any]) -> None:
        stats.examples += 1
        ledger = parse_ledger_text(json.dumps(document), "generated.json")
        text = dump_ledger(ledger)
        assert parse_ledger_text(text, "again") == ledger
        assert parse_ledger_text(text.encode(), "again") == ledger
        assert dump_ledger(parse_ledger_text(text, "again")) == text
        assert check_invariants(ledger, history=True) == []

    run()
    _finish(stats, "ledger-round-trip", capsys, minimum=int(profile(0.5).max_examples * 0.9))


def test_one_step_of_every_example_through_the_command_line(
    quiet_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One step of every example also runs through the CLI: an applied one prints the same plan
    with --preview and --out and writes the same ledger; one the library refuses (a bad
    reference, too large an amount, a void payment) exits 2 with one JSON error and writes
    nothing."""
    stats = Stats()

    @given(st.data())
    @profile(0.1)
    def run(data: st.DataObject) -> None:
        run_sequence(data, stats, tmp_path, max_steps=3, cli_share=1.0)

    run()
    _finish(stats, "command-line", capsys, minimum=int(profile(0.1).max_examples * 0.9))
    assert stats.cli_runs > 0


def test_the_soak_profile_is_selected_by_the_environment() -> None:
    assert settings.get_profile("paysplit-soak").max_examples >= 10_000
    assert settings.get_profile("paysplit-test").max_examples >= 100
    expected = (
        "paysplit-soak"
        if os.environ.get("PAYSPLIT_PROPERTY_PROFILE") == "soak"
        else ("paysplit-test")
    )
    assert expected == PROFILE
