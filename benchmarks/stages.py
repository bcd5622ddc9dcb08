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
The loop (:mod:`benchmarks.handwritten`) is timed the same way, round after
round with ours; each stage keeps its best round, in CPU time of this process
(a busy shared machine stretches wall time far more). Nothing is written to
disk here: ``benchmarks.run`` measures that.
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


def _timed(label: str, work: Callable[[], Any], results: dict[str, float], n: int) -> Any:
    """Run ``work``; keep the smallest CPU time per account any round of it took.

    CPU time of this process (``time.process_time``), not wall time: on a shared
    machine another process's load stretches wall time far more than CPU time.
    """
    gc.collect()
    started = time.process_time()
    value = work()
    took = 1e6 * (time.process_time() - started) / n
    results[label] = min(took, results.get(label, took))
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
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

    def one_round() -> None:
        _timed("JSON only (json.loads, no hooks)", lambda: [json.loads(x) for x in lines], ours, n)

        def read() -> list[Account]:
            accounts = []
            for number, line in enumerate(lines, start=2):
                parsed = worker.read_account(line, number, header, f"line {number}")
                assert not isinstance(parsed, LedgerError), parsed
                accounts.append(parsed)
            return accounts

        accounts = _timed("read: JSON + pydantic + references", read, ours, n)
        plans = _timed(
            "allocate: the rule on each payment, in order",
            lambda: [worker.allocate_account(a, fields, run_date) for a in accounts],
            ours,
            n,
        )
        _timed(
            "write: plan lines (JSON)",
            lambda: [
                plan_line(a.id, 2, pid, plan)
                for a, made in zip(accounts, plans, strict=True)
                for pid, plan in made
            ],
            ours,
            n,
        )

    def loop_round() -> None:
        # (a function of its own: nothing of ours is alive while the loop is timed)
        parsed = _timed(
            "read: json.loads + tuples", lambda: [handwritten.parse(x) for x in lines], loop, n
        )
        made = _timed("allocate", lambda: [handwritten.allocate(a) for a in parsed], loop, n)
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        _timed(
            "write",
            lambda: [
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
            ],
            loop,
            n,
        )

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
