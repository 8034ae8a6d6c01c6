"""Two nodes on loopback (issue 23): ``torchrun --nnodes 2 --nproc-per-node 1`` started twice, one
process each, gloo, ``Trainer(num_nodes=2, devices=1, strategy="ddp")`` with MultigridCallback.

Both ranks must see the same per-batch shapes, disjoint indices that together cover each epoch,
and a resume from a checkpoint on both nodes must continue exactly like the uninterrupted run.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.toy import read_records

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATASET_SIZE = 96  # tests/multinode_fit.py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(out: Path, name: str, ckpt: Path | None = None) -> list[dict]:
    """Start both nodes as separate torchrun launches; wait for both; the records they wrote."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
             str(ROOT / "tests" / "multinode_fit.py"), str(out), name, *([str(ckpt)] if ckpt else [])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    outputs = []
    for node in nodes:
        try:
            outputs.append(node.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for other in nodes:
                other.kill()
            raise
    for rank, (node, output) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank} failed:\n{output[-4000:]}"
    return read_records(out / f"{name}.jsonl")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("two_nodes")
    return out, _two_nodes(out, "full")


def test_two_nodes_agree_on_shapes_and_split_every_epoch(uninterrupted: tuple[Path, list[dict]]) -> None:
    _, rows = uninterrupted
    by_rank = collections.defaultdict(list)
    for row in rows:
        by_rank[row["rank"]].append(row)
    assert set(by_rank) == {0, 1}
    epochs = sorted({r["epoch"] for r in rows})
    assert epochs == list(range(8))  # 5 baseline epochs -> 8 multigrid epochs
    assert len({(r["T"], r["S"]) for r in rows}) >= 4 and len({r["batch"] for r in rows}) >= 2
    for epoch in epochs:
        seen = {rank: [r for r in by_rank[rank] if r["epoch"] == epoch] for rank in (0, 1)}
        shapes = {rank: [(r["batch_idx"], r["batch"], r["T"], r["S"], r["splits"], r["lr"]) for r in seen[rank]]
                  for rank in (0, 1)}
        assert shapes[0] == shapes[1], f"epoch {epoch}: the nodes saw different batches"
        indices = {rank: [i for r in seen[rank] for i in r["indices"]] for rank in (0, 1)}
        assert not set(indices[0]) & set(indices[1]), f"epoch {epoch}: the nodes share clips"
        assert len(set(indices[0])) == len(indices[0]) and len(set(indices[1])) == len(indices[1])
        # Together they cover the epoch, but for what drop_last leaves: less than one batch per node.
        unused = DATASET_SIZE - len(indices[0]) - len(indices[1])
        assert 0 <= unused < 2 * max(r["batch"] for r in seen[0]), f"epoch {epoch}: {unused} clips unused"


def test_resume_on_both_nodes_continues_like_the_uninterrupted_run(uninterrupted: tuple[Path, list[dict]]) -> None:
    out, rows = uninterrupted
    rank0 = [r for r in rows if r["rank"] == 0]
    # Mid-epoch, in a stage with split BatchNorm: the hardest place to resume.
    step = next(i for i, r in enumerate(rank0) if r["epoch"] == 5 and r["batch_idx"] == 1) + 1
    assert rank0[step - 1]["splits"] > 1 and rank0[step]["epoch"] == 5
    checkpoint = out / "full" / "mid_epoch.ckpt"  # saved after that batch (tests/multinode_fit.py)
    assert torch.load(checkpoint, weights_only=False)["global_step"] == step
    resumed = _two_nodes(out, "resumed", checkpoint)
    for rank in (0, 1):
        want = [r for r in rows if r["rank"] == rank][step:]
        got = [r for r in resumed if r["rank"] == rank]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            assert g["lr"] == pytest.approx(w["lr"], rel=1e-12)
            assert {k: v for k, v in g.items() if k != "lr"} == {k: v for k, v in w.items() if k != "lr"}
        full_weights = torch.load(out / f"full-rank{rank}.pt")
        resumed_weights = torch.load(out / f"resumed-rank{rank}.pt")
        for name, value in full_weights.items():
            torch.testing.assert_close(resumed_weights[name], value, rtol=1e-6, atol=1e-7, msg=name)
