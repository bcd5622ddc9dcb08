"""``make bench``: paysplit's batch runner against the hand-written loop, side by side.

    python -m benchmarks.run                       # 20,000 and 200,000 accounts
    python -m benchmarks.run --sizes 2000 20000    # a quicker look
    python -m benchmarks.run --skip-dask
    python -m benchmarks.run --repeat 2            # best of two rounds (a shared machine)

For each size it generates (once, cached in ``bench-out/``) a seeded synthetic
JSON Lines ledger, then measures, each in a fresh process and one after the
other on the same data, in this order (each run right after the one it is
compared with, :data:`COMPARED_WITH`):

* ``handwritten``: :mod:`benchmarks.handwritten`, read + allocate + write;
* ``paysplit w1``: ``run_batch`` with the local engine, one worker (in process);
* ``paysplit w2``: the local engine with two worker processes;
* ``dask w2``: a 2-worker Dask ``LocalCluster`` (processes, 1 thread each);
* ``handwritten again``: the loop once more;
* ``paysplit w1 trace none``: ``paysplit w1`` with ``--trace none`` (plans without
  their trace);
* ``paysplit w2 trace none``: the same with two worker processes;

and, in this process, the allocation step alone (the compiled rule applied to
accounts parsed beforehand, against the loop's allocation on the same
accounts). Every paysplit run must write the same plans byte for byte, and
the splits must equal the hand-written loop's (on a sample of payments, and
on every account of the allocation step): a mismatch fails the benchmark.

Peak memory is the largest resident set of any one process of the run (from
``wait4``) and, for runs with workers, the peak of the whole process tree's
resident memory summed (sampled every 0.1 s with psutil). Results go to
``bench-out/results.json`` and, as a Markdown table, ``bench-out/results.md``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import generate, handwritten

OUT = Path("bench-out")
SEED = 6
RULE_NAME = "bench"
RULE_TEXT = """\
# The benchmark rule (issue 6): Apply Automatically's due-patient mode, never across doctors.
rule bench "Due patient, oldest first, no cross-doctor":
    oldest first where status in (due_patient, pending_patient), no cross-doctor
"""
AGAIN = "handwritten again"
COMPARED_WITH = {
    "paysplit w1": "handwritten",
    "paysplit w2": "paysplit w1",
    "dask w2": "paysplit w2",
    "paysplit w1 trace none": AGAIN,
    "paysplit w2 trace none": "paysplit w1 trace none",
}
"""The run each run is compared with: the one just before it in a round."""
ALLOCATION_SAMPLE = 5_000
"""Accounts parsed up front for the allocation-only measurement."""


@dataclass
class Run:
    name: str
    accounts: int
    payments: int
    splits: int
    seconds: float
    peak_rss_mb: float
    peak_tree_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accounts_per_s(self) -> float:
        return self.accounts / self.seconds

    def row(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "accounts": self.accounts,
            "payments": self.payments,
            "splits": self.splits,
            "seconds": round(self.seconds, 2),
            "accounts_per_s": round(self.accounts / self.seconds),
            "payments_per_s": round(self.payments / self.seconds),
            "splits_per_s": round(self.splits / self.seconds),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_tree_mb": round(self.peak_tree_mb, 1),
            **self.extra,
        }


# --- data -------------------------------------------------------------------------
def ledger_for(accounts: int) -> Path:
    """The seeded ledger of this size, generated once (a stamp says with what)."""
    path = OUT / f"ledger-{accounts}.jsonl"
    stamp = path.with_suffix(".stamp.json")
    meta = {"accounts": accounts, "seed": SEED, "generator": _generator_digest()}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == meta:
        return path
    print(f"generating {accounts:,} accounts into {path} ...", file=sys.stderr, flush=True)
    generate.write(path, accounts, SEED)
    stamp.write_text(json.dumps(meta))
    return path


def _generator_digest() -> str:
    import hashlib

    return hashlib.sha256(Path(generate.__file__).read_bytes()).hexdigest()[:16]


def rule_file() -> Path:
    path = OUT / "bench.rules"
    if not path.exists() or path.read_text() != RULE_TEXT:
        path.write_text(RULE_TEXT)
    return path


# --- measuring a process ------------------------------------------------------------
class _TreeSampler(threading.Thread):
    """Peak of the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with distributed
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self.done.wait(0.1)


def measure(command: list[str]) -> tuple[dict[str, Any], float, float, float, dict[str, Any]]:
    """Run a child: its JSON output, wall seconds, peak RSS of one process and of the
    tree, and the CPU seconds it used (its workers included) with the load around it."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    sampler = _TreeSampler(child.pid)
    sampler.start()
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"benchmark child failed ({child.returncode}): {' '.join(command)}")
    peak_one = usage.ru_maxrss / 1024  # KiB on Linux
    context = {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    return json.loads(output), seconds, peak_one, sampler.peak / (1 << 20), context


def run_handwritten(ledger: Path, out: Path, name: str = "handwritten") -> Run:
    result, seconds, peak, tree, context = measure(
        [sys.executable, "-m", "benchmarks.handwritten", str(ledger), str(out)]
    )
    return Run(
        name,
        result["accounts"],
        result["payments"],
        result["splits"],
        seconds,
        peak,
        max(tree, peak),
        context,
    )


def run_paysplit(
    name: str, ledger: Path, out: Path, engine: str, workers: int, trace: bool = True
) -> Run:
    job = {
        "rules": [str(rule_file())],
        "rule": RULE_NAME,
        "inputs": [str(ledger)],
        "out": str(out),
        "engine": engine,
        "workers": workers,
        "trace": trace,
    }
    result, seconds, peak, tree, context = measure(
        [sys.executable, "-m", "benchmarks.run", "--child", json.dumps(job)]
    )
    return Run(
        name,
        result["accounts"],
        result["payments"],
        result["splits"],
        seconds,
        peak,
        max(tree, peak),
        {"inner_seconds": result["seconds"], **context},
    )


def child(job_text: str) -> int:
    """The paysplit side of a measurement, in its own process: one ``run_batch``."""
    from paysplit.batch import BatchSpec, run_batch

    job = json.loads(job_text)
    spec = BatchSpec(rule_files=tuple(job["rules"]), rule=job["rule"], trace=job["trace"])
    summary = run_batch(
        spec, job["inputs"], job["out"], engine=job["engine"], workers=job["workers"]
    )
    print(json.dumps(summary.to_json()))
    return 0


def cache_bytecode() -> None:
    """Compile paysplit's modules and this folder's to cached bytecode before any run.

    Each run starts a Python process. An installed package runs from the bytecode pip
    compiled at install time; an editable install caches it on first import, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (it is on the machine of docs/performance.md), and
    then every paysplit process would compile some 60 modules again (0.06-0.2 s), which
    is not the work being measured. Up-to-date files are left alone.
    """
    places = [Path(__file__).parent]
    for package in ("paysplit", "paysplit.plugins"):
        found = importlib.util.find_spec(package)
        if found is not None and found.submodule_search_locations:
            places.extend(Path(p) for p in found.submodule_search_locations)
    for place in places:
        if not compileall.compile_dir(place, quiet=1):
            raise SystemExit(f"cannot compile the modules in {place}")


# --- checks -------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        yield from stream


def same_splits_on_sample(paysplit_plans: Path, handwritten_out: Path, every: int = 37) -> int:
    """Compare the splits of every ``every``-th payment (and the first 1000); count compared."""
    compared = 0
    for n, (ours, theirs) in enumerate(
        zip(_lines(paysplit_plans), _lines(handwritten_out), strict=True)
    ):
        if n >= 1000 and n % every:
            continue
        plan_line = json.loads(ours)
        loop_line = json.loads(theirs)
        mine = [(s["id"], s["charge"], s["amount"]) for s in plan_line["plan"]["splits"]]
        loop = [(s["id"], s["charge"], s["amount"]) for s in loop_line["splits"]]
        where = (plan_line["account"], plan_line["payment"], loop_line["payment"])
        if plan_line["payment"] != loop_line["payment"] or mine != loop:
            raise SystemExit(f"splits differ at payment line {n + 1} {where}: {mine} != {loop}")
        compared += 1
    return compared


def same_bytes(a: Path, b: Path) -> None:
    with open(a, "rb") as x, open(b, "rb") as y:
        while True:
            p, q = x.read(1 << 20), y.read(1 << 20)
            if p != q:
                raise SystemExit(f"{a} and {b} differ: the engines must write the same bytes")
            if not p:
                return


# --- the allocation step alone ------------------------------------------------------
def allocation_only(ledger: Path, sample: int, rounds: int = 7) -> dict[str, Any]:
    """The compiled rule against accounts already parsed, and the loop on the same accounts.

    Both sides get the first ``sample`` accounts of ``ledger`` parsed beforehand (the
    loop: its typed records; paysplit: validated :class:`~paysplit.ledger.Account`
    models) and are timed doing only the allocation, best of ``rounds``; their splits
    must be equal. Both allocation steps start from the records as read: the sums of
    what was already paid, adjusted and refunded are made inside the timed step on
    both sides (paysplit's account figures, the loop's dictionaries).
    """
    from paysplit.batch import BatchSpec, Worker
    from paysplit.errors import LedgerError
    from paysplit.ledger import Account

    worker = Worker(BatchSpec(rule_files=(str(rule_file().resolve()),), rule=RULE_NAME))
    header, fields = worker.header(str(ledger.resolve()))
    run_date = worker.run_date(header)
    raw_lines: list[bytes] = []
    with open(ledger, "rb") as stream:
        stream.readline()
        for line in stream:
            raw_lines.append(line)
            if len(raw_lines) >= sample:
                break

    started = time.perf_counter()
    records = [handwritten.parse(line) for line in raw_lines]
    loop_parse = time.perf_counter() - started
    started = time.perf_counter()
    accounts: list[Account] = []
    for number, line in enumerate(raw_lines, start=2):
        parsed = worker.read_account(line, number, header, f"line {number}")
        if isinstance(parsed, LedgerError):
            raise SystemExit(f"line {number} of the generated ledger does not load: {parsed}")
        accounts.append(parsed)
    our_parse = time.perf_counter() - started

    Made = list[tuple[str, str, str, int]]

    bare = Worker(dataclasses.replace(worker.spec, trace=False))

    def ours(worker: Worker = worker) -> tuple[Made, float]:
        started = time.perf_counter()
        plans = [worker.allocate_account(account, fields, run_date) for account in accounts]
        seconds = time.perf_counter() - started
        made = [  # the core's split rows: (id, payment, charge, installment, amount, ...)
            (s[0], s[1], s[2] or "", s[4])
            for account_plans in plans
            for _, plan in account_plans
            for s in plan.splits
        ]
        return made, seconds

    def loop() -> tuple[Made, float]:
        started = time.perf_counter()
        made = handwritten.splits_of(records)
        return [(s[0], s[1], s[2], s[3]) for s in made], time.perf_counter() - started

    ours_times: list[float] = []
    bare_times: list[float] = []
    loop_times: list[float] = []
    our_splits: Made = []
    loop_splits: Made = []
    for _ in range(rounds):
        gc.collect()
        loop_splits, seconds = loop()
        loop_times.append(seconds)
        gc.collect()
        our_splits, seconds = ours()
        ours_times.append(seconds)
        gc.collect()
        bare_splits, seconds = ours(bare)
        bare_times.append(seconds)
        if bare_splits != our_splits:
            raise SystemExit("allocation step: --trace none made other splits")
    if our_splits != loop_splits:
        first = next(
            (n for n, (a, b) in enumerate(zip(our_splits, loop_splits, strict=False)) if a != b),
            min(len(our_splits), len(loop_splits)),
        )
        raise SystemExit(
            f"allocation step: the splits differ at split {first} "
            f"({len(our_splits)} made by paysplit, {len(loop_splits)} by the loop)"
        )
    best_ours, best_loop, best_bare = min(ours_times), min(loop_times), min(bare_times)
    return {
        "accounts": len(accounts),
        "splits": len(our_splits),
        "paysplit_seconds": best_ours,
        "handwritten_seconds": best_loop,
        "paysplit_accounts_per_s": len(accounts) / best_ours,
        "handwritten_accounts_per_s": len(accounts) / best_loop,
        "ratio": best_loop / best_ours,
        "paysplit_trace_none_accounts_per_s": len(accounts) / best_bare,
        "ratio_trace_none": best_loop / best_bare,
        "paysplit_parse_us_per_account": 1e6 * our_parse / len(accounts),
        "handwritten_parse_us_per_account": 1e6 * loop_parse / len(accounts),
        "paysplit_rounds": [round(t, 3) for t in ours_times],
        "paysplit_trace_none_rounds": [round(t, 3) for t in bare_times],
        "handwritten_rounds": [round(t, 4) for t in loop_times],
        "median_ratio": statistics.median(loop_times) / statistics.median(ours_times),
    }


# --- the machine --------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.date.today().isoformat(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- the report ---------------------------------------------------------------------
def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}; "
        f"load average at start {m['loadavg_at_start']}. The machine is shared: `load` is "
        "the 1-minute load average before and after each run (2.0 means both CPUs busy); "
        "CPU s counts every process of the run.",
        "",
        "| accounts | run | seconds | CPU s | accounts/s | payments/s | splits/s | "
        "peak RSS (one process) | peak RSS (all processes) | load | ratio |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for size in results["sizes"]:
        runs = {r["run"]: r for r in size["runs"]}
        for row in size["runs"]:
            ratio = ""
            base = runs.get(COMPARED_WITH.get(row["run"], ""))
            if base is None:
                pass
            elif row["run"].startswith("paysplit w1"):
                ratio = (
                    f"{row['accounts_per_s'] / base['accounts_per_s']:.2f}× {base['run']} "
                    f"({base['cpu_seconds'] / row['cpu_seconds']:.2f}× by CPU time)"
                )
            elif row["run"].startswith("paysplit w2"):
                ratio = f"{row['accounts_per_s'] / base['accounts_per_s']:.2f}× {base['run']}"
            elif row["run"] == "dask w2":
                ratio = f"{row['seconds'] / base['seconds']:.2f}× w2's time"
            lines.append(
                f"| {row['accounts']:,} | {row['run']} | {row['seconds']:.1f} | "
                f"{row['cpu_seconds']:.1f} | "
                f"{row['accounts_per_s']:,} | {row['payments_per_s']:,} | "
                f"{row['splits_per_s']:,} | {row['peak_rss_mb']:.0f} MB | "
                f"{row['peak_tree_mb']:.0f} MB | "
                f"{row['load_before']:.1f}→{row['load_after']:.1f} | {ratio} |"
            )
    alloc = results.get("allocation_only")
    if alloc:
        lines += [
            "",
            f"Allocation step alone ({alloc['accounts']:,} accounts parsed beforehand, "
            f"{alloc['splits']:,} splits, best of {len(alloc['paysplit_rounds'])}): paysplit "
            f"{alloc['paysplit_accounts_per_s']:,.0f} accounts/s, hand-written loop "
            f"{alloc['handwritten_accounts_per_s']:,.0f} accounts/s: "
            f"**{alloc['ratio']:.3f}×**; with `--trace none` paysplit "
            f"{alloc['paysplit_trace_none_accounts_per_s']:,.0f} accounts/s: "
            f"**{alloc['ratio_trace_none']:.3f}×**. Parsing: paysplit "
            f"{alloc['paysplit_parse_us_per_account']:.0f} µs/account (JSON, pydantic, "
            f"references), loop {alloc['handwritten_parse_us_per_account']:.0f} µs/account.",
        ]
    lines += ["", "Targets:", ""]
    for target in results["targets"]:
        mark = "met" if target["met"] else "**missed**"
        lines.append(f"- {target['name']}: {target['value']} (target {target['goal']}): {mark}")
    return "\n".join(lines) + "\n"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sizes = results["sizes"]
    by_size = {s["accounts"]: {r["run"]: r for r in s["runs"]} for s in sizes}
    largest = max(by_size)
    smallest = min(by_size)
    for accounts, runs in sorted(by_size.items()):
        for name, label in (("paysplit w1", ""), ("paysplit w1 trace none", ", --trace none")):
            loop = runs.get(COMPARED_WITH[name])
            if loop is not None and name in runs:
                ratio = runs[name]["accounts_per_s"] / loop["accounts_per_s"]
                found.append(
                    {
                        "name": f"end to end, 1 worker vs hand-written, {accounts:,} accounts"
                        + label,
                        "value": f"{ratio:.2f}×",
                        "goal": "≥ 0.5×",
                        "met": ratio >= 0.5,
                    }
                )
        for two, label in (("paysplit w2", ""), ("paysplit w2 trace none", ", --trace none")):
            one = runs.get(COMPARED_WITH[two])
            if one is not None and two in runs:
                ratio = runs[two]["accounts_per_s"] / one["accounts_per_s"]
                found.append(
                    {
                        "name": f"--workers 2 vs 1, {accounts:,} accounts" + label,
                        "value": f"{ratio:.2f}×",
                        "goal": "≥ 1.7×",
                        "met": ratio >= 1.7,
                    }
                )
    alloc = results.get("allocation_only")
    if alloc:
        for key, label in (("ratio", ""), ("ratio_trace_none", ", --trace none")):
            found.append(
                {
                    "name": "allocation step alone vs hand-written" + label,
                    "value": f"{alloc[key]:.3f}×",
                    "goal": "≥ 0.5×",
                    "met": alloc[key] >= 0.5,
                }
            )
    big = by_size[largest].get("paysplit w1")
    small = by_size[smallest].get("paysplit w1")
    if big:
        found.append(
            {
                "name": f"peak memory, 1 worker, {largest:,} accounts",
                "value": f"{big['peak_rss_mb']:.0f} MB",
                "goal": "< 300 MB",
                "met": big["peak_rss_mb"] < 300,
            }
        )
    if big and small and largest != smallest:
        growth = big["peak_rss_mb"] / small["peak_rss_mb"] - 1
        found.append(
            {
                "name": f"memory growth {smallest:,} → {largest:,} accounts, 1 worker",
                "value": f"{growth:+.1%}",
                "goal": "within 20%",
                "met": abs(growth) <= 0.2,
            }
        )
    dask_run = by_size[largest].get("dask w2")
    local2 = by_size[largest].get("paysplit w2")
    if dask_run and local2:
        slower = dask_run["seconds"] / local2["seconds"] - 1
        found.append(
            {
                "name": f"Dask 2-worker LocalCluster vs local --workers 2, {largest:,} accounts",
                "value": f"{slower:+.1%} time",
                "goal": "within 25%",
                "met": slower <= 0.25,
            }
        )
    return found


def _report(runs: list[Run], run: Run) -> None:
    runs.append(run)
    print(json.dumps(run.row()), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="paysplit batch benchmarks (make bench)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--keep-output", action="store_true", help="keep the plans written")
    parser.add_argument("--allocation-sample", type=int, default=ALLOCATION_SAMPLE)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every run; the fastest of each is kept"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    OUT.mkdir(exist_ok=True)
    cache_bytecode()
    results: dict[str, Any] = {"machine": machine(), "sizes": []}
    print(json.dumps(results["machine"]), file=sys.stderr)
    rule_file()
    for accounts in sorted(args.sizes):
        ledger = ledger_for(accounts)
        work = OUT / f"run-{accounts}"
        plans = f"{ledger.stem}.plans.jsonl"
        best: dict[str, Run] = {}
        compared = 0
        plans_bytes = bare_bytes = 0
        for _ in range(args.repeat):  # rounds: every run sees about the same machine
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            # Each run right after the run it is compared with (COMPARED_WITH): a shared
            # machine drifts, and a pair minutes apart would measure the drift as well.
            rounds: list[Run] = []
            _report(rounds, run_handwritten(ledger, work / "handwritten.jsonl"))
            _report(rounds, run_paysplit("paysplit w1", ledger, work / "w1", "local", 1))
            compared = same_splits_on_sample(work / "w1" / plans, work / "handwritten.jsonl")
            plans_bytes = (work / "w1" / plans).stat().st_size
            _report(rounds, run_paysplit("paysplit w2", ledger, work / "w2", "local", 2))
            same_bytes(work / "w1" / plans, work / "w2" / plans)
            if not args.skip_dask:
                _report(rounds, run_paysplit("dask w2", ledger, work / "dask", "dask", 2))
                same_bytes(work / "w1" / plans, work / "dask" / plans)
            shutil.rmtree(work / "w2")
            shutil.rmtree(work / "dask", ignore_errors=True)
            _report(rounds, run_handwritten(ledger, work / "handwritten.jsonl", AGAIN))
            _report(
                rounds,
                run_paysplit("paysplit w1 trace none", ledger, work / "bare", "local", 1, False),
            )
            same_splits_on_sample(work / "bare" / plans, work / "handwritten.jsonl")
            bare_bytes = (work / "bare" / plans).stat().st_size
            _report(
                rounds,
                run_paysplit("paysplit w2 trace none", ledger, work / "bare2", "local", 2, False),
            )
            same_bytes(work / "bare" / plans, work / "bare2" / plans)
            shutil.rmtree(work / "bare")
            shutil.rmtree(work / "bare2")
            for run in rounds:
                if run.name not in best or run.seconds < best[run.name].seconds:
                    best[run.name] = run
        results["sizes"].append(
            {
                "accounts": accounts,
                "ledger_bytes": ledger.stat().st_size,
                "plans_bytes": plans_bytes,
                "plans_bytes_trace_none": bare_bytes,
                "payments_compared_with_loop": compared,
                "rounds": args.repeat,
                "runs": [r.row() for r in best.values()],
            }
        )
        if not args.keep_output:
            shutil.rmtree(work, ignore_errors=True)

    if args.allocation_sample > 0:
        smallest = min(args.sizes)
        results["allocation_only"] = allocation_only(
            ledger_for(smallest), min(args.allocation_sample, smallest)
        )
    results["targets"] = targets(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (OUT / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
