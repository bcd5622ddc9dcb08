"""Where the time goes: the single-worker hot path, stage by stage, against the loop's.

    python -m benchmarks.stages                    # the first 5,000 accounts of the 20k ledger
    python -m benchmarks.stages --accounts 2000
    python -m benchmarks.stages --trace none       # plans without their trace
    pip install pyinstrument && python -m pyinstrument -m benchmarks.stages   # inside a stage

Each stage is timed on its own over the same accounts, so the numbers add up
to (about) one worker's cost per account: reading a line, turning it into a
validated account, applying the rule to each payment (the allocation core's
plans as rows: :class:`paysplit.plans.PlanDraft`), and turning the plans into
output lines (the plan's JSON, made from the rows in one pydantic-core call).
The accounts go through the stages a batch at a time (``--batch``, 50), as a
worker streams them: memory stays small and what one stage made is still in
the processor's caches for the next, so the figures are a worker's, not those
of a heap holding thousands of accounts. The loop (:mod:`benchmarks.handwritten`)
is timed the same way, round after round with ours; each stage keeps its best
round, in CPU time of this process (a busy shared machine stretches wall time
far more). Nothing is written to disk here: ``benchmarks.run`` measures that.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import handwritten
from benchmarks.run import RULE_NAME, ledger_for, rule_file


class _Round:
    """One round's CPU time per stage, summed over its batches of accounts."""

    def __init__(self) -> None:
        self.took: dict[str, float] = {}

    def timed(self, label: str, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(*args)`` and add the CPU time it took (``time.process_time``, not
        wall time: on a shared machine another process's load stretches wall time far
        more)."""
        started = time.process_time()
        value = work(*args)
        self.took[label] = self.took.get(label, 0.0) + time.process_time() - started
        return value

    def keep_best(self, results: dict[str, float], n: int) -> None:
        """Keep, per stage, the smallest CPU time per account any round took."""
        for label, seconds in self.took.items():
            took = 1e6 * seconds / n
            results[label] = min(took, results.get(label, took))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument(
        "--batch", type=int, default=50, help="accounts held at a time (a worker holds one)"
    )
    parser.add_argument(
        "--trace", choices=("full", "none"), default="full", help="as paysplit batch --trace"
    )
    args = parser.parse_args(argv)

    from paysplit.batch import BatchSpec, Worker, plan_line
    from paysplit.errors import LedgerError
    from paysplit.ledger import Account

    ledger = ledger_for(20_000)
    worker = Worker(
        BatchSpec(
            rule_files=(str(rule_file().resolve()),), rule=RULE_NAME, trace=args.trace == "full"
        )
    )
    header, fields = worker.header(str(ledger.resolve()))
    run_date = worker.run_date(header)
    with open(ledger, "rb") as stream:
        stream.readline()
        lines = [stream.readline() for _ in range(args.accounts)]
    n = len(lines)

    ours: dict[str, float] = {}
    loop: dict[str, float] = {}

    batches = [lines[at : at + args.batch] for at in range(0, n, args.batch)]

    def json_only(batch: list[bytes]) -> list[Any]:
        return [json.loads(x) for x in batch]

    def read(batch: list[bytes]) -> list[Account]:
        accounts = []
        for number, line in enumerate(batch, start=2):
            parsed = worker.read_account(line, number, header, f"line {number}")
            assert not isinstance(parsed, LedgerError), parsed
            accounts.append(parsed)
        return accounts

    def allocate(accounts: list[Account]) -> list[Any]:
        return [worker.allocate_account(a, fields, run_date) for a in accounts]

    def write(accounts: list[Account], plans: list[Any]) -> list[bytes]:
        return [
            plan_line(a.id, 2, pid, plan)
            for a, made in zip(accounts, plans, strict=True)
            for pid, plan in made
        ]

    def one_round() -> None:
        clock = _Round()
        gc.collect()
        for batch in batches:  # a batch at a time, as a worker streams its accounts
            clock.timed("JSON only (json.loads, no hooks)", json_only, batch)
            accounts = clock.timed("read: JSON + pydantic + references", read, batch)
            plans = clock.timed("allocate: the rule on each payment, in order", allocate, accounts)
            clock.timed("write: plan lines (JSON)", write, accounts, plans)
        clock.keep_best(ours, n)

    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def loop_parse(batch: list[bytes]) -> list[Any]:
        return [handwritten.parse(x) for x in batch]

    def loop_allocate(parsed: list[Any]) -> list[Any]:
        return [handwritten.allocate(a) for a in parsed]

    def loop_write(made: list[Any]) -> list[str]:
        return [
            dumps(
                {
                    "payment": pid,
                    "splits": [
                        {"id": s[0], "charge": s[2], "amount": handwritten.money(s[3])}
                        for s in splits
                    ],
                    "unallocated": handwritten.money(left),
                }
            )
            for result in made
            for pid, splits, left in result
        ]

    def loop_round() -> None:
        # (a function of its own: nothing of ours is alive while the loop is timed)
        clock = _Round()
        gc.collect()
        for batch in batches:
            parsed = clock.timed("read: json.loads + tuples", loop_parse, batch)
            made = clock.timed("allocate", loop_allocate, parsed)
            clock.timed("write", loop_write, made)
        clock.keep_best(loop, n)

    for _ in range(max(1, args.rounds)):  # rounds interleaved: both sides see the same load
        one_round()
        loop_round()

    print(
        f"{n:,} accounts, --trace {args.trace}; CPU microseconds per account, "
        f"best of {args.rounds} rounds\n"
    )
    print("| stage | paysplit | hand-written loop |")
    print("| --- | ---: | ---: |")
    rows = [
        (
            "read (parse + validate)",
            ours["read: JSON + pydantic + references"],
            loop["read: json.loads + tuples"],
        ),
        ("allocate", ours["allocate: the rule on each payment, in order"], loop["allocate"]),
        ("write (serialise)", ours["write: plan lines (JSON)"], loop["write"]),
    ]
    for label, mine, theirs in rows:
        print(f"| {label} | {mine:,.0f} | {theirs:,.0f} |")
    total_ours = sum(r[1] for r in rows)
    total_loop = sum(r[2] for r in rows)
    print(f"| total | {total_ours:,.0f} | {total_loop:,.0f} |")
    print(f"\n(json.loads alone, no hooks: {ours['JSON only (json.loads, no hooks)']:,.0f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
