"""bf16 mixed precision with split BN, and torch.compile over a whole schedule (issue 14)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from lightning_multigrid.callback.hooks import MultigridCallback
from tests.toy import ToyModule


def _fit(module, **trainer_kw):
    cb = MultigridCallback(short_cycle_min_crop=0, max_batch_factor=None, steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=1)
    pl.Trainer(max_epochs=5, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, num_sanity_val_steps=0, callbacks=[cb], **trainer_kw).fit(module)
    return cb


def test_bf16_mixed_with_split_bn():
    module = ToyModule(dataset_size=48)
    _fit(module, precision="bf16-mixed")
    # Every stage trained, with split BN (8 groups at the coarsest grid), and the statistics stay fp32 and finite.
    assert sorted({r["epoch"] for r in module.records}) == list(range(8)) and {r["splits"] for r in module.records} >= {8, 1}
    for bn in (module.net.bn, module.net.bn2):
        assert bn.running_var.dtype == torch.float32 and torch.isfinite(bn.running_var).all()


def test_compile_keeps_one_graph_per_shape_over_the_schedule():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    module = ToyModule(dataset_size=48)
    # dynamic=False: one graph per input shape, so the default limit (8) would fall back to eager.
    module.net = torch.compile(module.net, backend="eager", dynamic=False)
    limit_before = torch._dynamo.config.recompile_limit
    _fit(module)
    shapes = {(r["batch"], r["T"], r["S"]) for r in module.records}
    assert len(shapes) == 8  # training shapes of the toy recipe; validation and precise BN add more
    # Every shape got its own graph: no frame hit the recompile limit (with the default of 8 one
    # does, and every later shape runs eagerly).
    assert not [k for k in counters["unimplemented"] if "recompile limit" in k.lower()]
    assert counters["frames"]["ok"] == counters["frames"]["total"]
    assert counters["stats"]["unique_graphs"] >= len(shapes)
    assert torch._dynamo.config.recompile_limit == limit_before  # restored at teardown


def test_recompile_note_only_when_compile_is_used(caplog):
    import logging

    module = ToyModule(dataset_size=48)
    with caplog.at_level(logging.INFO):
        _fit(module, limit_train_batches=1)
    assert "MultigridCallback: baseline" in caplog.text  # the callback's info lines are captured
    assert "torch.compile may recompile" not in caplog.text
    from lightning_multigrid.callback.model_probe import uses_compile

    assert not uses_compile(module)
    module.net = torch.compile(module.net, backend="eager", dynamic=False)
    assert uses_compile(module)
