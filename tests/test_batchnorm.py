"""Tests of lightning_multigrid.batchnorm.convert (single process): split BN, conversion, precise BN.

Variance convention under test: every split keeps torch's running *unbiased* variance; merged
statistics apply the law of total variance to the stored values (mean of split variances plus the
population variance of the split means). For equal groups of *biased* variances that is exactly the
full-batch biased variance (``test_merge_moments_is_exact_for_biased_group_variances``); with the
stored unbiased ones it exceeds it by ``mean(biased group var) / (n - 1)``
(``test_module_merge_convention_with_unbiased_running_var``).
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from lightning_multigrid.batchnorm.convert import (
    apply_batchnorm_plan,
    convert_to_split_batchnorm,
    merge_split_statistics,
    revert_to_batchnorm,
    set_num_splits,
    set_sync_group,
)
from lightning_multigrid.batchnorm.precise import update_bn_stats
from lightning_multigrid.batchnorm.split import SplitBatchNorm3d, merge_moments
from lightning_multigrid.schedule.recipe import BatchNormPlan

C = 3


def _x(n: int, seed: int = 0, c: int = C, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Per-channel offsets and scales so that statistics differ between channels.
    offset = torch.arange(c, dtype=dtype).view(1, c, 1, 1, 1)
    return torch.randn(n, c, 2, 3, 3, generator=g, dtype=dtype) * (1 + offset) + offset


def _bn(c: int = C, dtype: torch.dtype = torch.float32, **kwargs) -> nn.BatchNorm3d:
    bn = nn.BatchNorm3d(c, dtype=dtype, **kwargs)
    with torch.no_grad():  # non-trivial affine parameters
        bn.weight.copy_(torch.linspace(0.5, 1.5, c))
        bn.bias.copy_(torch.linspace(-1, 1, c))
    return bn


def _group_stats(x: torch.Tensor, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, 2, 3, 4]
    return x.mean(dims), x.var(dims, correction=1 if unbiased else 0)


def _reference_split(x: torch.Tensor, k: int, weight, bias, eps: float = 1e-5) -> torch.Tensor:
    """Per-group BN written out by hand (the definition the fast path must match)."""
    out = torch.empty_like(x)
    for g in range(k):
        part = x[g::k]
        mean, var = _group_stats(part, unbiased=False)
        shape = (1, -1, 1, 1, 1)
        normed = (part - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
        out[g::k] = normed * weight.view(shape) + bias.view(shape)
    return out


# ------------------------------------------------------------------------------------------------
# Merging
# ------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 5),
    per_group=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    offset=st.floats(-50, 50),
    scale=st.floats(0.01, 20),
)
def test_merge_moments_is_exact_for_biased_group_variances(k, per_group, seed, offset, scale):
    x = _x(k * per_group, seed, dtype=torch.float64) * scale + offset
    means = torch.stack([_group_stats(x[g::k], unbiased=False)[0] for g in range(k)])
    variances = torch.stack([_group_stats(x[g::k], unbiased=False)[1] for g in range(k)])
    mean, var = merge_moments(means, variances)
    full_mean, full_var = _group_stats(x, unbiased=False)
    torch.testing.assert_close(mean, full_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(var, full_var, rtol=1e-10, atol=1e-10)


def test_merge_moments_of_identical_groups_is_identity():
    m, v = torch.randn(C), torch.rand(C) + 0.1
    mean, var = merge_moments(m.repeat(3, 1), v.repeat(3, 1))
    assert torch.equal(mean, m) and torch.equal(var, v)


def test_merge_moments_rejects_bad_shapes():
    with pytest.raises(ValueError, match="merge_moments"):
        merge_moments(torch.zeros(2, 3), torch.zeros(3, 2))


@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 4), per_group=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_module_merge_convention_with_unbiased_running_var(k, per_group, seed):
    x = _x(k * per_group, seed, dtype=torch.float64)
    bn = SplitBatchNorm3d(C, momentum=1.0, num_splits=k, dtype=torch.float64)
    bn(x)  # momentum 1: split running stats are exactly this batch's group stats
    merge_split_statistics(bn)
    full_mean, full_var = _group_stats(x, unbiased=False)
    biased = torch.stack([_group_stats(x[g::k], unbiased=False)[1] for g in range(k)])
    unbiased = torch.stack([_group_stats(x[g::k], unbiased=True)[1] for g in range(k)])
    means = torch.stack([_group_stats(x[g::k], unbiased=False)[0] for g in range(k)])
    n = per_group * 2 * 3 * 3  # values per group and channel
    torch.testing.assert_close(bn.running_mean, full_mean)
    # What is stored: mean of unbiased split vars + population variance of split means ...
    torch.testing.assert_close(bn.running_var, unbiased.mean(0) + means.var(0, correction=0))
    # ... which is the full-batch biased variance plus mean(biased split var) / (n - 1).
    torch.testing.assert_close(bn.running_var, full_var + biased.mean(0) / (n - 1))


# ------------------------------------------------------------------------------------------------
# k == 1 is nn.BatchNorm3d
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, None])
def test_single_split_is_bit_identical_to_batchnorm3d(momentum):
    ref = _bn(momentum=momentum)
    bn = copy.deepcopy(ref)
    convert_to_split_batchnorm(bn)
    assert isinstance(bn, SplitBatchNorm3d) and bn.num_splits == 1
    for step in range(3):
        x = _x(4, seed=step)
        assert torch.equal(bn(x), ref(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), getattr(ref, name)), name
    bn.eval()
    ref.eval()
    x = _x(4, seed=9)
    assert torch.equal(bn(x), ref(x))
    direct = SplitBatchNorm3d(C, momentum=momentum)
    plain = nn.BatchNorm3d(C, momentum=momentum)
    assert torch.equal(direct(x), plain(x)) and torch.equal(direct.running_var, plain.running_var)


# ------------------------------------------------------------------------------------------------
# In-place conversion
# ------------------------------------------------------------------------------------------------
def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(C, 4, 1),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.Conv3d(4, 4, 1),
        nn.BatchNorm3d(4, momentum=None),
        nn.Flatten(2),
        nn.BatchNorm1d(4),  # not a BatchNorm3d: must stay as it is
    )


def test_conversion_keeps_parameters_buffers_and_optimizer():
    model = _model()
    param_ids = [id(p) for p in model.parameters()]
    buffer_ids = {n: id(b) for n, b in model.named_buffers()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(_x(4)).sum().backward()
    opt.step()

    bns = convert_to_split_batchnorm(model)
    assert bns == [model[1], model[4]]
    assert type(model[6]) is nn.BatchNorm1d
    assert [id(p) for p in model.parameters()] == param_ids
    assert all(id(dict(model.named_buffers())[n]) == i for n, i in buffer_ids.items())
    assert convert_to_split_batchnorm(model) == bns  # idempotent
    assert all(bn.num_splits == 1 for bn in bns)

    set_num_splits(model, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    model(_x(4, seed=1)).square().sum().backward()
    opt.step()
    assert all(p.grad is not None for p in model.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert list(opt.state) == list(model.parameters())


def test_sync_batchnorm_and_subclasses_are_not_converted():
    class MyBN(nn.BatchNorm3d):
        pass

    model = nn.Sequential(nn.SyncBatchNorm(C), MyBN(C), nn.BatchNorm2d(C))
    assert convert_to_split_batchnorm(model) == []
    assert [type(m) for m in model] == [nn.SyncBatchNorm, MyBN, nn.BatchNorm2d]


def test_revert_merges_and_restores_plain_batchnorm():
    model = _model()
    plain_keys = list(model.state_dict())
    bns = convert_to_split_batchnorm(model)
    set_num_splits(model, 2)
    model(_x(4))
    bn = bns[0]
    expected = merge_moments(bn.split_running_mean.view(2, -1), bn.split_running_var.view(2, -1))
    reverted = revert_to_batchnorm(model)
    assert reverted == bns and type(bn) is nn.BatchNorm3d
    assert not hasattr(bn, "split_running_mean") and not hasattr(bn, "num_splits")
    assert list(model.state_dict()) == plain_keys
    assert torch.equal(bn.running_mean, expected[0]) and torch.equal(bn.running_var, expected[1])
    model(_x(4, seed=3))  # still a working BatchNorm3d


# ------------------------------------------------------------------------------------------------
# Split behaviour
# ------------------------------------------------------------------------------------------------
def test_fast_path_matches_per_group_reference_and_gradients():
    x = _x(6, dtype=torch.float64)
    bn = SplitBatchNorm3d(C, num_splits=3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        bn.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    coeff = torch.randn_like(x)

    xa = x.clone().requires_grad_()
    (bn(xa) * coeff).sum().backward()
    w = bn.weight.detach().clone().requires_grad_()
    b = bn.bias.detach().clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ref = _reference_split(xb, 3, w, b)
    (ref * coeff).sum().backward()

    torch.testing.assert_close(bn(x), ref)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(bn.weight.grad, w.grad)
    torch.testing.assert_close(bn.bias.grad, b.grad)


@pytest.mark.parametrize("n", [4, 3])  # fast path and per-group path
def test_gradcheck_split_forward(n):
    bn = SplitBatchNorm3d(2, num_splits=2, dtype=torch.float64)
    x = torch.randn(n, 2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    w = torch.rand(2, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, dtype=torch.float64, requires_grad=True)

    def fn(x, w, b):
        return functional_call(bn, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(fn, (x, w, b))


def test_partial_batch_groups_follow_index_modulo_k():
    k, n = 3, 7  # groups of 3, 2, 2
    x = _x(n)
    bn = SplitBatchNorm3d(C, momentum=0.5, num_splits=k)
    refs = [_bn(momentum=0.5) for _ in range(k)]
    for ref in refs:
        with torch.no_grad():
            ref.weight.copy_(bn.weight)
            ref.bias.copy_(bn.bias)
    y = bn(x)
    for g, ref in enumerate(refs):
        torch.testing.assert_close(y[g::k], ref(x[g::k]))
        torch.testing.assert_close(bn.split_running_mean[g * C : (g + 1) * C], ref.running_mean)
        torch.testing.assert_close(bn.split_running_var[g * C : (g + 1) * C], ref.running_var)

    # Fewer samples than splits: the empty split keeps its statistics.
    bn4 = SplitBatchNorm3d(C, momentum=0.5, num_splits=4)
    bn4(_x(3))
    assert torch.equal(bn4.split_running_mean[3 * C :], torch.zeros(C))
    assert torch.equal(bn4.split_running_var[3 * C :], torch.ones(C))
    assert not torch.equal(bn4.split_running_mean[:C], torch.zeros(C))


def test_momentum_none_is_cumulative_average_per_split():
    bn = SplitBatchNorm3d(C, momentum=None, num_splits=2)
    xs = [_x(4, seed=s) for s in range(3)]
    for x in xs:
        bn(x)
    for g in range(2):
        means = torch.stack([_group_stats(x[g::2], unbiased=False)[0] for x in xs])
        vars_ = torch.stack([_group_stats(x[g::2], unbiased=True)[1] for x in xs])
        torch.testing.assert_close(bn.split_running_mean[g * C : (g + 1) * C], means.mean(0))
        torch.testing.assert_close(bn.split_running_var[g * C : (g + 1) * C], vars_.mean(0))
    assert int(bn.num_batches_tracked) == 3


def test_split_count_change_merges_then_restarts_from_merged():
    bn = SplitBatchNorm3d(C, momentum=0.3, num_splits=2)
    weight, bias = bn.weight, bn.bias
    w_before, b_before = weight.detach().clone(), bias.detach().clone()
    for s in range(2):
        bn(_x(4, seed=s))
    merged = merge_moments(bn.split_running_mean.view(2, -1), bn.split_running_var.view(2, -1))
    assert not torch.equal(bn.running_mean, merged[0])  # not merged yet (lazy)

    bn.set_num_splits(4)
    assert torch.equal(bn.running_mean, merged[0]) and torch.equal(bn.running_var, merged[1])
    assert bn.split_running_mean.shape == (4 * C,)
    assert torch.equal(bn.split_running_mean.view(4, C), merged[0].repeat(4, 1))
    assert torch.equal(bn.split_running_var.view(4, C), merged[1].repeat(4, 1))
    assert bn.weight is weight and bn.bias is bias
    assert torch.equal(weight, w_before) and torch.equal(bias, b_before)

    buffer = bn.split_running_mean
    bn.set_num_splits(1)
    assert bn.split_running_mean is buffer and buffer.numel() == 0  # same object, resized
    assert torch.equal(bn.running_mean, merged[0])  # merging identical splits changes nothing


def test_state_dict_is_plain_and_loads_into_fresh_batchnorm3d():
    model = _model()
    plain = _model()
    bns = convert_to_split_batchnorm(model)
    set_num_splits(model, 2)
    for s in range(2):
        model(_x(4, seed=s))
    state = model.state_dict()  # nobody called merge: the state dict must merge by itself
    assert list(state) == list(plain.state_dict())
    bn = bns[0]
    expected = merge_moments(bn.split_running_mean.view(2, -1), bn.split_running_var.view(2, -1))
    torch.testing.assert_close(state["1.running_mean"], expected[0])
    torch.testing.assert_close(state["1.running_var"], expected[1])

    plain.load_state_dict(state, strict=True)
    model.eval()
    plain.eval()
    x = _x(4, seed=5)
    assert torch.equal(model(x), plain(x))

    # Loading into a split model makes every split restart from the loaded statistics.
    other = _model()
    convert_to_split_batchnorm(other)
    set_num_splits(other, 3)
    other.load_state_dict(state, strict=True)
    assert torch.equal(
        other[1].split_running_mean.view(3, -1), state["1.running_mean"].repeat(3, 1)
    )


def test_eval_uses_merged_statistics():
    bn = SplitBatchNorm3d(C, momentum=0.5, num_splits=2)
    for s in range(3):
        bn(_x(4, seed=s))
    mean, var = merge_moments(bn.split_running_mean.view(2, -1), bn.split_running_var.view(2, -1))
    bn.eval()
    x = _x(5, seed=7)  # any batch size in eval
    expected = F.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps)
    assert torch.equal(bn(x), expected)
    # Statistics do not move in eval, and splits are untouched by merging.
    assert torch.equal(bn.running_mean, mean)
    bn.train()
    bn(_x(4, seed=8))
    bn.training = False  # even without going through train(False), eval merges first
    mean, var = merge_moments(bn.split_running_mean.view(2, -1), bn.split_running_var.view(2, -1))
    torch.testing.assert_close(
        bn(x), F.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps)
    )


def test_copy_and_pickle_keep_split_state():
    bn = SplitBatchNorm3d(C, num_splits=2)
    bn(_x(4))
    for clone in (copy.deepcopy(bn), pickle.loads(pickle.dumps(bn))):
        assert clone.num_splits == 2
        assert torch.equal(clone.split_running_mean, bn.split_running_mean)
        clone(_x(4, seed=1))


def test_invalid_arguments_raise_clear_errors():
    bn = SplitBatchNorm3d(C)
    with pytest.raises(ValueError, match="num_splits"):
        bn.set_num_splits(0)
    with pytest.raises(ValueError, match="num_splits"):
        set_num_splits(bn, 1.5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="torch.distributed"):
        set_sync_group(bn, None, 2)
    with pytest.raises(ValueError, match="new_sync_groups"):
        apply_batchnorm_plan(bn, BatchNormPlan("sync", sync_size=2), None)
    with pytest.raises(ValueError, match="sync"):
        bn.set_sync_group(object(), 2)  # allowed at k == 1 ...
        bn.set_num_splits(2)  # ... but splitting while synchronised is refused


def test_apply_batchnorm_plan_converts_and_sets_modes():
    model = _model()
    bns = apply_batchnorm_plan(model, BatchNormPlan("split", num_splits=4))
    assert len(bns) == 2 and all(bn.num_splits == 4 and bn.sync_size == 1 for bn in bns)
    apply_batchnorm_plan(model, BatchNormPlan("plain", reason="fell back"))
    assert all(bn.num_splits == 1 and bn.sync_size == 1 for bn in bns)
    assert all(bn.split_running_mean.numel() == 0 for bn in bns)


# ------------------------------------------------------------------------------------------------
# Precise BN
# ------------------------------------------------------------------------------------------------
def test_update_bn_stats_is_average_of_per_batch_statistics():
    model = _model()
    model[4].momentum = 0.2
    model.eval()
    model[1].train()  # a mixed mode that must come back as it was
    modes = [m.training for m in model.modules()]
    counters = [int(model[i].num_batches_tracked) for i in (1, 4, 6)]
    batches = [_x(4, seed=s) * (s + 1) for s in range(5)]

    used = update_bn_stats(model, iter(batches), num_batches=3)
    assert used == 3
    with torch.no_grad():
        feats = [model[0](x) for x in batches[:3]]
    mean = torch.stack([_group_stats(f, unbiased=False)[0] for f in feats]).mean(0)
    var = torch.stack([_group_stats(f, unbiased=True)[1] for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert [m.training for m in model.modules()] == modes
    assert model[1].momentum == 0.1 and model[4].momentum == 0.2
    assert [int(model[i].num_batches_tracked) for i in (1, 4, 6)] == counters


def test_update_bn_stats_split_custom_forward_and_errors():
    model = _model()
    bns = convert_to_split_batchnorm(model)
    set_num_splits(model, 2)
    model(_x(4, seed=11))
    batches = [{"video": _x(4, seed=s) + s} for s in range(3)]

    used = update_bn_stats(model, batches, forward=lambda m, b: m(b["video"]))
    assert used == 3
    with torch.no_grad():
        feats = [model[0](b["video"]) for b in batches]
    split_means = torch.stack(
        [
            torch.stack([_group_stats(f[g::2], unbiased=False)[0] for f in feats]).mean(0)
            for g in range(2)
        ]
    )
    split_vars = torch.stack(
        [
            torch.stack([_group_stats(f[g::2], unbiased=True)[1] for f in feats]).mean(0)
            for g in range(2)
        ]
    )
    mean, var = merge_moments(split_means, split_vars)
    torch.testing.assert_close(bns[0].running_mean, mean)
    torch.testing.assert_close(bns[0].running_var, var)
    # Every split restarts from the precise merged statistics, which eval and checkpoints use.
    assert torch.equal(bns[0].split_running_mean.view(2, -1), bns[0].running_mean.repeat(2, 1))
    assert torch.equal(model.state_dict()["1.running_var"], bns[0].running_var)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="no batch"):
        update_bn_stats(model, [])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert bns[0].momentum == 0.1
    assert update_bn_stats(nn.Linear(2, 2), [torch.zeros(1, 2)]) == 0
