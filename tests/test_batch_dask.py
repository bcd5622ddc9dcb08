"""``--engine dask``: the same chunks as a Dask bag, the same bytes as the local engine.

One 2-worker ``LocalCluster`` (processes, one thread each) is started for the
module; the batch joins it with ``scheduler=ADDR`` as it would join a real
cluster. A second test lets the batch start (and close) its own cluster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dask
import distributed  # the dask extra: make installs it
import pytest

from paysplit import batch
from paysplit.batch import BatchError, BatchSpec, run_batch

ROOT = Path(__file__).resolve().parent.parent
RULES = """\
rule careful "Due patient, never across doctors, never past unattached credit":
    oldest first where status in (due_patient, pending_patient), no cross-doctor
    block on unattached negative adjustments
    leftover credit due patient
"""


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "benchmarks/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("dask")
    generate = _generator()
    inputs = []
    for name, accounts, seed in (("east", 150, 21), ("west", 70, 22)):
        path = folder / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(generate.lines(accounts, seed))
        inputs.append(str(path))
    with open(inputs[1], "a", encoding="utf-8") as out:
        out.write('{"id": "broken", "patients": [}\n')  # one bad line among the good ones
    rules = folder / "careful.rules"
    rules.write_text(RULES, encoding="utf-8")
    spec = BatchSpec(rule_files=(str(rules),), rule="careful")
    local = folder / "local"
    summary = run_batch(spec, inputs, local, workers=1, chunk_size=16)
    return {"folder": folder, "inputs": inputs, "spec": spec, "local": local, "summary": summary}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as running:
        yield running


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "summary.json"}


def test_dask_on_a_running_cluster_writes_what_the_local_engine_writes(
    data: dict[str, Any], cluster: Any
) -> None:
    out = data["folder"] / "dask-joined"
    summary = run_batch(
        data["spec"],
        data["inputs"],
        out,
        engine="dask",
        scheduler=cluster.scheduler_address,
        chunk_size=16,
    )
    local = outputs(data["local"])
    assert set(local) == {"east.plans.jsonl", "west.plans.jsonl", "errors.jsonl"}
    assert outputs(out) == local
    assert summary.counts == data["summary"].counts
    assert summary.chunks == 10 + 5
    assert summary.counts.errors == 1 and summary.counts.blocked > 0
    assert summary.counts.splits > 100
    stored = json.loads((out / "summary.json").read_text())
    assert stored["engine"] == "dask"
    assert sorted(p.name for p in out.iterdir()) == [
        "east.plans.jsonl",
        "errors.jsonl",
        "summary.json",
        "west.plans.jsonl",
    ]  # no staging folder, no part files left


def test_without_a_chunk_size_dask_cuts_bigger_chunks_than_the_local_engine(
    data: dict[str, Any], cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Dask task costs more to schedule than a pool's: unless told, each engine cuts its
    # own size (500 and 2,000 account lines; 30 and 60 here, against 150 and 70 accounts).
    monkeypatch.setattr(batch, "DEFAULT_CHUNK_SIZE", 30)
    monkeypatch.setattr(batch, "DASK_CHUNK_SIZE", 60)
    local = run_batch(data["spec"], data["inputs"], data["folder"] / "default-local")
    out = data["folder"] / "default-dask"
    dask_run = run_batch(
        data["spec"], data["inputs"], out, engine="dask", scheduler=cluster.scheduler_address
    )
    assert local.chunks == 5 + 3  # 150 and 71 lines (the bad one too)
    assert dask_run.chunks == 3 + 2  # cut by bytes, about 60 lines each (30 would make 9)
    assert outputs(out) == outputs(data["local"])


def test_dask_starts_and_closes_its_own_local_cluster(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cluster the batch starts has no profiler sampling the tasks, and its event
    # loops time themselves once a second, not every 20 ms (docs/batch.md).
    seen: dict[str, Any] = {}
    local_cluster = distributed.LocalCluster

    def cluster_as_started(*args: Any, **kwargs: Any) -> Any:
        seen["profile"] = dask.config.get("distributed.worker.profile.enabled")
        seen["tick"] = dask.config.get("distributed.admin.tick.interval")
        return local_cluster(*args, **kwargs)

    monkeypatch.setattr(distributed, "LocalCluster", cluster_as_started)
    out = data["folder"] / "dask-own"
    summary = run_batch(data["spec"], data["inputs"], out, engine="dask", workers=2, chunk_size=40)
    assert outputs(out) == outputs(data["local"])
    assert summary.workers == 2
    assert json.loads((out / "summary.json").read_text())["workers"] == 2
    assert seen == {"profile": False, "tick": "1s"}
    # (only for the run: the caller's Dask configuration is its own)
    assert dask.config.get("distributed.worker.profile.enabled") is True
    assert dask.config.get("distributed.admin.tick.interval") == "20ms"


def test_dask_finds_the_same_lines_in_blocks_of_bytes_as_the_local_scan(
    data: dict[str, Any], cluster: Any
) -> None:
    # The cluster's workers find the chunks a block of bytes each (paysplit.batch_blocks):
    # an account line longer than many blocks, blank lines, a bad line and no newline at
    # the end still give every line its own number, as the local scan does.
    lines = list(_generator().lines(12, 23))
    long_account = json.loads(lines[5])
    long_account["extra"] = {"note": "x" * 40_000}
    lines[5] = json.dumps(long_account) + "\n"
    lines[8:8] = ["\n", "\n", '{"id": "torn", "charges": [\n']
    north = data["folder"] / "north.jsonl"
    north.write_text("".join(lines).rstrip("\n"), encoding="utf-8")
    inputs = [*data["inputs"], str(north)]
    local = data["folder"] / "blocks-local"
    run_batch(data["spec"], inputs, local, workers=1, chunk_size=2)
    out = data["folder"] / "blocks-dask"

    summary = run_batch(
        data["spec"], inputs, out, engine="dask", scheduler=cluster.scheduler_address, chunk_size=2
    )

    assert outputs(out) == outputs(local)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["file"], e["line"]) for e in errors if e["file"].endswith("north.jsonl")] == [
        (str(north), 11)
    ]
    plans = [json.loads(line) for line in (out / "north.plans.jsonl").read_text().splitlines()]
    assert {p["line"] for p in plans} <= {2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 16}
    assert [p["account"] for p in plans if p["line"] == 6] == [long_account["id"]] * 3
    # (the long account, read whole, has three payments to apply)
    assert summary.files[2].counts.accounts == 13


@pytest.fixture
def lost_after_cut(data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of an input that vanishes after the driver cut it, before a worker opens it."""
    west = tmp_path / "west.jsonl"
    west.write_bytes(Path(data["inputs"][1]).read_bytes())
    cut_blocks = batch.cut_blocks

    def cut_then_lose(inputs: Any, chunk_size: int) -> Any:
        blocks = cut_blocks(inputs, chunk_size)
        west.unlink()
        return blocks

    monkeypatch.setattr(batch, "cut_blocks", cut_then_lose)
    return west


def test_an_input_lost_before_the_workers_count_its_lines_stops_the_run_naming_it(
    data: dict[str, Any], cluster: Any, tmp_path: Path, lost_after_cut: Path
) -> None:
    west = lost_after_cut
    out = tmp_path / "out"
    with pytest.raises(BatchError) as stopped:
        run_batch(
            data["spec"], [str(west)], out, engine="dask", scheduler=cluster.scheduler_address
        )
    assert str(stopped.value) == (
        f"the batch stopped: {west}: No such file or directory; nothing was written "
        f"(files already in {out} are as they were)"
    )
    assert not out.exists()


def test_a_lost_input_with_a_cluster_of_its_own_says_so_once_and_logs_nothing(
    data: dict[str, Any], tmp_path: Path, lost_after_cut: Path, capfd: Any
) -> None:
    with pytest.raises(BatchError, match="No such file or directory; nothing was written"):
        run_batch(data["spec"], [str(lost_after_cut)], tmp_path / "out", engine="dask", workers=2)
    assert capfd.readouterr().err == ""  # (the workers' log of the failed task, silenced)


KILL_CHUNK_1 = """
import os, signal
from paysplit import batch_worker
real_run_chunk = batch_worker.Worker.run_chunk
def killed_on_chunk_1(self, chunk, *args):
    if chunk.index == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_run_chunk(self, chunk, *args)
batch_worker.Worker.run_chunk = killed_on_chunk_1
"""


@contextlib.contextmanager
def one_worker_that_dies_on_chunk_1(**config: Any) -> Iterator[tuple[Any, Any]]:
    """A cluster of its own (one worker, one thread), its worker killed by chunk 1."""
    with (
        dask.config.set(config),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(exec, KILL_CHUNK_1, {})  # in the worker's own process
        yield cluster, client


def test_a_dask_worker_that_dies_once_costs_a_retry_not_the_run(
    data: dict[str, Any], tmp_path: Path
) -> None:
    # The worker dies on chunk 1; its nanny starts a new worker (without the killer),
    # and the scheduler runs chunk 1 again there. The part files the dead worker began
    # are written again from the start: the output is the local engine's.
    out = tmp_path / "out"
    with one_worker_that_dies_on_chunk_1() as (cluster, client):
        started = client.run(os.getpid)
        summary = run_batch(
            data["spec"],
            data["inputs"],
            out,
            engine="dask",
            scheduler=cluster.scheduler_address,
            chunk_size=16,
        )
        assert client.run(os.getpid) != started  # the worker was indeed replaced
    assert outputs(out) == outputs(data["local"])
    assert summary.counts == data["summary"].counts


def test_a_chunk_whose_dask_workers_die_stops_the_run_naming_its_lines(
    data: dict[str, Any], tmp_path: Path
) -> None:
    # Dask runs a task again when its worker dies (the nanny starts a new worker), up to
    # allowed-failures times, then gives up (KilledWorker): one message naming the
    # chunk's lines, not an internal error. Here it gives up at the first death, and
    # the worker holds one task at a time (so only the chunk it ran is given up on).
    # (Dask cuts its chunks by bytes: the second holds lines 19-31.)
    out = tmp_path / "out"
    config = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with (
        one_worker_that_dies_on_chunk_1(**config) as (cluster, _),
        pytest.raises(BatchError) as stopped,
    ):
        run_batch(
            data["spec"],
            data["inputs"],
            out,
            engine="dask",
            scheduler=cluster.scheduler_address,
            chunk_size=16,
        )
    east = data["inputs"][0]
    assert str(stopped.value) == (
        f"{east} lines 19-31: Dask gave up on them after the worker they were given to died "
        "(killed, perhaps for lack of memory: the workers' logs say more); the run stopped "
        "and nothing was written. Run it again; if memory is short, with a smaller "
        "--chunk-size"
    )
    assert not out.exists()
