"""The hot path agrees with the general one: same plans, same bytes, same errors.

Issue 6 made the allocation core record splits and trace entries as tuples and
build the pydantic plan once at the edge (:class:`paysplit.plans.PlanDraft`),
and made ``paysplit batch`` build each request once, keep an account's figures
up to date between payments and write plan lines from the draft. None of it
may change a byte of output. (While it was made, the new core was compared
with a frozen copy of the old one on generated cases and on 4,524 reference
plans and 21,648 batch plan lines: identical; see ``docs/performance.md``.)
On generated ledgers and rule files (the strategies of ``test_properties.py``)
these tests check that:

* the batch's allocation step (drafts, figures updated in place of rebuilt,
  drafts applied between payments) gives, payment after payment, the plans
  ``apply_rule`` and ``apply_to_account`` give, and the same plan-line bytes;
* a draft's JSON is its model's JSON, whatever the text in it;
* a guard that declares ``speaks_only_beyond_limits`` keeps the promise.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_properties import AS_OF, BUILTIN, PLUGINS, compile_rules, ledgers, profile, rule_files

from paysplit.allocation import RuleRequest, allocate
from paysplit.apply import apply_to_account
from paysplit.batch import BatchSpec, Worker, payments_to_apply, plan_line
from paysplit.compiler import compile_source
from paysplit.errors import PaysplitError
from paysplit.figures import AccountFigures
from paysplit.ledger import Account, Ledger, LedgerHeader
from paysplit.ledger_io import ledger_from_document
from paysplit.operations import apply_rule, request_base
from paysplit.plans import BlockedReason, PlanDraft, PlannedCredit, PlanWarning
from paysplit.policy import ProposedSplit, Target
from paysplit.rules import RuleSet


def _outcome(run: Any) -> tuple[str, Any]:
    """A plan's JSON, or the error it raised (type and message)."""
    try:
        plan = run()
    except PaysplitError as error:
        return "error", (type(error).__name__, str(error))
    return "plan", plan.model_dump_json()


def _requests(ledger: Ledger, rules: RuleSet, account: Account) -> list[dict[str, Any]]:
    """Every request ``apply_rule`` could make on the account, as keyword arguments."""
    base = request_base(rules)
    reserved = frozenset(s.id for a in ledger.accounts for s in a.splits)
    found: list[dict[str, Any]] = []
    for rule in rules.rules.values():
        common = dict(account=account, rule=rule, run_date=AS_OF, reserved_ids=reserved, **base)
        if rule.pooled:
            found.append(dict(common))
            charges = tuple(c.id for c in account.charges[:2])
            if charges:
                found.append(dict(common, charge_ids=charges))
        for payment in account.payments:
            if not payment.void and payment.type == "payment":
                found.append(dict(common, payment=payment))
    return found


def _reference_plans(
    account: Account, rules: RuleSet, rule: str, fields: dict[str, Any], run_date: dt.date
) -> list[tuple[str, Any]]:
    """The batch's allocation step as it was: ``apply_rule`` per payment on a ledger of
    the account, each plan applied with ``apply_to_account`` before the next one."""
    plans: list[tuple[str, Any]] = []
    queue = payments_to_apply(account)
    for position, payment_id in enumerate(queue, start=1):
        ledger = Ledger.model_construct(**fields, accounts=(account,))
        plan = apply_rule(ledger, rules, rule, payment_id=payment_id, as_of=run_date)
        plans.append((payment_id, plan))
        if position < len(queue) and plan.blocked is None and not plan.is_empty:
            account = apply_to_account(account, plan)
    return plans


@given(ledgers(), rule_files())
@profile(0.25)
def test_the_batch_allocation_step_gives_the_plans_of_apply_rule(doc: Any, rule_file: Any) -> None:
    ledger = ledger_from_document(doc, "generated")
    fields = {name: getattr(ledger, name) for name in LedgerHeader.model_fields}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.rules"
        path.write_text(rule_file.text, encoding="utf-8")
        for spec in rule_file.specs:
            worker = Worker(
                BatchSpec(rule_files=(str(path),), rule=spec.name, allowed_plugins=tuple(BUILTIN))
            )
            for account in ledger.accounts:
                try:
                    want = _reference_plans(account, worker.rules, spec.name, fields, AS_OF)
                except PaysplitError as error:
                    try:
                        worker.allocate_account(account, fields, AS_OF)
                    except PaysplitError as got:
                        assert (type(got), str(got)) == (type(error), str(error))
                    else:
                        raise AssertionError(f"the batch did not fail like apply: {error}")
                    continue
                got = worker.allocate_account(account, fields, AS_OF)
                assert [p for p, _ in got] == [p for p, _ in want]
                for (payment_id, draft), (_, plan) in zip(got, want, strict=True):
                    assert draft.to_plan() == plan
                    assert draft.to_json() == plan.model_dump_json().encode()
                    assert plan_line(account.id, 7, payment_id, draft) == plan_line(
                        account.id, 7, payment_id, plan
                    )


@given(ledgers(), rule_files())
@profile(0.15)
def test_figures_updated_with_a_plans_splits_are_the_figures_read_again(
    doc: Any, rule_file: Any
) -> None:
    ledger = ledger_from_document(doc, "generated")
    rules = compile_rules(rule_file)
    for account in ledger.accounts:
        for kwargs in _requests(ledger, rules, account):
            try:
                plan = allocate(RuleRequest(**kwargs))
            except PaysplitError:
                continue
            if plan.blocked is not None:
                continue
            draft = PlanDraft(
                operation=plan.operation,
                rule=plan.rule,
                blocked=None,
                splits=[
                    (s.id, s.payment, s.charge or "", s.installment, s.amount, s.transfer, "x")
                    for s in plan.splits
                ],
                credits=plan.credits,
                unallocated=dict(plan.unallocated),
                warnings=plan.warnings,
                trace=[],
                date=plan.date,
            )
            after = apply_to_account(account, plan)
            assert apply_to_account(account, draft) == after
            rows = ((s.payment, s.charge, s.installment, s.amount) for s in plan.splits)
            assert AccountFigures.of(account).with_splits(after, rows) == AccountFigures.of(after)


ids = st.text(min_size=1, max_size=12)
texts = st.text(max_size=40)
maybe = st.none() | texts
money = st.integers(-(10**12), 10**12)


@given(
    splits=st.lists(
        st.tuples(ids, ids, ids, st.none() | ids, money, st.none() | ids, texts), max_size=4
    ),
    trace=st.lists(st.tuples(st.none() | ids, ids, st.booleans(), money, texts, maybe), max_size=6),
    warnings=st.lists(st.builds(PlanWarning, message=texts, clause=maybe), max_size=2),
    credits=st.lists(
        st.builds(
            PlannedCredit,
            payment=ids,
            amount=money,
            due_to=texts,
            memo=texts,
            provider=maybe,
            office=maybe,
        ),
        max_size=2,
    ),
    blocked=st.none() | st.builds(BlockedReason, reason=texts, clause=maybe, plugin=maybe),
    unallocated=st.dictionaries(ids, money, max_size=3),
    rule=maybe,
    operation=texts,
)
@profile(0.5)
def test_a_drafts_json_is_its_plans_json(**parts: Any) -> None:
    draft = PlanDraft(
        operation=parts["operation"],
        rule=parts["rule"],
        blocked=parts["blocked"],
        splits=parts["splits"],
        credits=tuple(parts["credits"]),
        unallocated=parts["unallocated"],
        warnings=tuple(parts["warnings"]),
        trace=parts["trace"],
        date=dt.date(2025, 3, 1),
    )
    assert draft.to_json() == draft.to_plan().model_dump_json().encode()
    assert draft.is_empty == draft.to_plan().is_empty


def _declaring_guards() -> list[Any]:
    """The settings guards, in every mode, whose impl declares the promise."""
    found = []
    for mode in ("block", "warn", "allow"):
        text = (
            f"settings:\n    negative unallocated {mode}\n    overpay charge {mode}\n\n"
            "rule r: oldest first, no cross-doctor\n"
        )
        ruleset, _ = compile_source(text, "g.rules", PLUGINS)
        assert ruleset is not None
        guards = (*ruleset.settings.guards, *ruleset.rules["r"].guards)
        found += [g for g in guards if getattr(g.impl, "speaks_only_beyond_limits", False)]
    return found


DECLARING = _declaring_guards()


@given(ledgers(), st.data())
@profile(0.25)
def test_guards_that_speak_only_beyond_limits_say_nothing_within_them(doc: Any, data: Any) -> None:
    assert len(DECLARING) == 6  # negative unallocated and overpay charge, three modes each
    ledger = ledger_from_document(doc, "generated")
    for account in ledger.accounts:
        if not account.charges or not account.payments:
            continue
        payment = data.draw(st.sampled_from(account.payments))
        charge = data.draw(st.sampled_from(account.charges))
        allocatable = data.draw(st.integers(0, 10**7))
        credit_left = data.draw(st.integers(0, 10**7))
        amount = data.draw(st.integers(-(10**7), min(allocatable, credit_left)))
        target = Target(
            charge=charge,
            installment=None,
            plan=None,
            balance=data.draw(st.integers(-(10**7), 10**7)),
            patient_balance=data.draw(st.integers(0, 10**7)),
            allocatable=allocatable,
            age=data.draw(st.integers(-1000, 1000)),
            position=0,
        )
        split = ProposedSplit(
            payment=payment,
            target=target,
            amount=amount,
            credit_left=credit_left,
            manual=data.draw(st.booleans()),
            run_date=AS_OF,
        )
        for guard in DECLARING:
            assert guard.impl.check_split(split) is None


@given(
    balance=money,
    patient_balance=money,
    allocatable=money,
    age=st.integers(-(10**5), 10**5),
    position=st.integers(0, 10**5),
    amount=money,
    credit_left=money,
    manual=st.booleans(),
)
@profile(0.1)
def test_the_cores_constructors_make_the_contracts_objects(
    balance: int,
    patient_balance: int,
    allocatable: int,
    age: int,
    position: int,
    amount: int,
    credit_left: int,
    manual: bool,
) -> None:
    from paysplit.contract_objects import make_proposed as _proposed
    from paysplit.contract_objects import make_target as _target

    fields = dict(
        charge=None,
        installment=None,
        plan=None,
        balance=balance,
        patient_balance=patient_balance,
        allocatable=allocatable,
        age=age,
        position=position,
    )
    fast, plain = _target(**fields), Target(**fields)
    assert type(fast) is Target and fast == plain and repr(fast) == repr(plain)
    assert hash(fast) == hash(plain)
    split = dict(amount=amount, credit_left=credit_left, manual=manual, run_date=AS_OF)
    made = _proposed(payment=None, target=fast, **split)
    assert type(made) is ProposedSplit and made == ProposedSplit(
        payment=None, target=plain, **split
    )
