"""Two-process CPU (gloo) tests of sync BN and distributed precise BN.

One spawn runs every check (process start-up dominates the cost); a failing assertion in a worker
fails the test with the worker's traceback.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lightning_multigrid.batchnorm.convert import (
    apply_batchnorm_plan,
    convert_to_split_batchnorm,
    new_sync_groups,
    set_num_splits,
)
from lightning_multigrid.batchnorm.precise import update_bn_stats
from lightning_multigrid.schedule.recipe import BatchNormPlan

WORLD = 2
C = 3
PER_RANK = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather(t: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(WORLD)]
    dist.all_gather(out, t.contiguous())
    return out


def _make_bn() -> nn.BatchNorm3d:
    bn = nn.BatchNorm3d(C, momentum=0.5, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        bn.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    return bn


def _check_sync(rank: int) -> None:
    g = torch.Generator().manual_seed(0)  # same global data on every rank
    data = torch.randn(WORLD * PER_RANK, C, 2, 3, 3, generator=g, dtype=torch.float64) * 3 + 1
    coeff = torch.randn(data.shape, generator=g, dtype=torch.float64)
    mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)

    ref = _make_bn()
    full = data.clone().requires_grad_()
    (ref(full) * coeff).sum().backward()

    bn = _make_bn()
    groups = {2: new_sync_groups(2)}
    assert new_sync_groups(1) is not None  # every rank creates both size-1 groups, in order
    apply_batchnorm_plan(bn, BatchNormPlan("sync", sync_size=2), groups)
    for _ in range(2):  # the second step also checks the running-average update
        local = data[mine].clone().requires_grad_()
        bn.weight.grad = bn.bias.grad = None
        y = bn(local)
        (y * coeff[mine]).sum().backward()
    ref(data)  # the reference's second step (running statistics)

    ref_out = nn.functional.batch_norm(data, None, None, ref.weight, ref.bias, True, 0.0, ref.eps)
    torch.testing.assert_close(y, ref_out[mine])
    torch.testing.assert_close(local.grad, full.grad[mine])
    # The parameter gradient of the concatenated batch is the sum of the ranks' gradients (DDP sums).
    wsum, bsum = bn.weight.grad.clone(), bn.bias.grad.clone()
    dist.all_reduce(wsum)
    dist.all_reduce(bsum)
    torch.testing.assert_close(wsum, ref.weight.grad)
    torch.testing.assert_close(bsum, ref.bias.grad)
    for name in ("running_mean", "running_var"):
        stats = _gather(getattr(bn, name))
        assert torch.equal(stats[0], stats[1]), name
        torch.testing.assert_close(stats[0], getattr(ref, name))

    # Back to local statistics: each rank normalises its own batch.
    apply_batchnorm_plan(bn, BatchNormPlan("plain"))
    local_ref = nn.functional.batch_norm(
        data[mine], None, None, bn.weight, bn.bias, True, 0.0, bn.eps
    )
    torch.testing.assert_close(bn(data[mine]), local_ref)


def _check_precise_bn(rank: int) -> None:
    model = nn.Sequential(nn.Conv3d(C, 4, 1), nn.BatchNorm3d(4), nn.BatchNorm3d(4))
    torch.manual_seed(0)  # identical weights on both ranks
    for p in model.parameters():
        nn.init.normal_(p)
    convert_to_split_batchnorm(model)
    set_num_splits(model, 2)
    model.eval()
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    batches = [torch.randn(4, C, 2, 3, 3, generator=g) * (rank + 1) + rank for _ in range(3)]

    assert update_bn_stats(model, batches) == 3
    assert not model.training
    for name, buf in model.named_buffers():
        if name.endswith(("running_mean", "running_var")) and "split" not in name:
            stats = _gather(buf)
            assert torch.equal(stats[0], stats[1]), name
    # Equal batch counts: the average over ranks is the average over all batches of both ranks.
    all_batches = [torch.empty_like(b) for b in batches for _ in range(WORLD)]
    for i, b in enumerate(batches):
        dist.all_gather(all_batches[i * WORLD : (i + 1) * WORLD], b)
    with torch.no_grad():
        feats = [model[0](b) for b in all_batches]
    dims = [0, 2, 3, 4]
    split_means = torch.stack(
        [torch.stack([f[k::2].mean(dims) for f in feats]).mean(0) for k in range(2)]
    )
    torch.testing.assert_close(model[1].running_mean, split_means.mean(0))


def _check_ddp_wrapping(rank: int) -> None:
    # DDP broadcasts buffers (split ones included) and must survive the split count changing.
    model = nn.Sequential(nn.Conv3d(C, 4, 1), nn.BatchNorm3d(4))
    convert_to_split_batchnorm(model)
    ddp = DistributedDataParallel(model)
    x = torch.randn(4, C, 1, 2, 2) + rank
    for k in (1, 2, 1):
        set_num_splits(model, k)
        ddp(x).square().sum().backward()
    grads = _gather(model[0].weight.grad)
    assert torch.equal(grads[0], grads[1])


def _worker(rank: int, port: int) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        torch.set_num_threads(1)
        _check_sync(rank)
        _check_precise_bn(rank)
        _check_ddp_wrapping(rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sync_and_precise_bn_on_two_cpu_processes():
    mp.spawn(_worker, args=(_free_port(),), nprocs=WORLD, join=True)
