"""The no-g warm-up of a granularity model trained from scratch (``no_g_warmup_steps``; issue 16's empty-mask
plateau): the first N steps train it as plain SAM-2 (best of 3), then its granularity head starts from the SAM-2
output that won the most prompts."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from train_helpers import tiny_train_config_dict

from granseg.errors import InputError
from granseg.train.trainer import Trainer, load_train_config, lr_factor
from granseg.train.unsamv2_task import UnSAMv2Task, start_granularity_head

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(tmp_path, name="run", **changes):
    changes = {
        "extra_trainable": ["sam.mask_decoder.", "sam.prompt_encoder."],
        "no_g_warmup_steps": 2,
        **changes,
    }
    data = tiny_train_config_dict(tmp_path, name, max_masks=3, correction_clicks=1, **changes)
    return load_train_config(json.dumps(data))


def test_config_checks_the_warmup(tmp_path):
    assert _config(tmp_path, no_g_warmup_steps=0).no_g_warmup_steps == 0
    with pytest.raises(InputError, match="no_g_warmup_steps must be >= 0"):
        _config(tmp_path, no_g_warmup_steps=-1)
    with pytest.raises(InputError, match=r"must be below the run's steps \(3\)"):
        _config(tmp_path, no_g_warmup_steps=3, max_steps=3)
    with pytest.raises(InputError, match="'sam.mask_decoder.' to extra_trainable"):
        _config(tmp_path, extra_trainable=["sam.prompt_encoder."])
    recipe = load_train_config(json.dumps({"task": "unsamv2"}))
    assert recipe.no_g_warmup_steps == 0  # the paper's recipe: off
    assert not recipe.g_phase_lr_restart and recipe.g_phase_multimask_weight == 0
    with pytest.raises(InputError, match="needs no_g_warmup_steps > 0"):
        _config(tmp_path, no_g_warmup_steps=0, g_phase_lr_restart=True)
    # the best-of-3 term also runs without a warm-up (from step 0), but only on a trainable decoder
    assert (
        _config(tmp_path, no_g_warmup_steps=0, g_phase_multimask_weight=1.0).g_phase_multimask_weight == 1.0
    )
    with pytest.raises(InputError, match="g_phase_multimask_weight trains SAM-2's own outputs"):
        _config(tmp_path, no_g_warmup_steps=0, g_phase_multimask_weight=1.0, extra_trainable=[])
    with pytest.raises(InputError, match="g_phase_multimask_weight must be >= 0"):
        _config(tmp_path, g_phase_multimask_weight=-1.0)


def test_g_phase_lr_restart_gives_the_g_phase_its_own_warmup_and_cosine():
    """1,000 steps, warm-up 50, switch at 500: with the restart, steps 0-499 and 500-999 each run warm-up + cosine
    to min_lr_ratio; without it, one schedule (the g phase starts at the middle of the cosine)."""
    from granseg.train.unsamv2_config import UnSAMv2TrainConfig

    common = {
        "steps": 1000,
        "warmup_steps": 50,
        "min_lr_ratio": 0.1,
        "init_from": "x",
        "no_g_warmup_steps": 500,
    }
    common["extra_trainable"] = ("sam.mask_decoder.",)
    one = UnSAMv2TrainConfig(**common)
    two = UnSAMv2TrainConfig(**common, g_phase_lr_restart=True)
    assert one.schedule_phases() == (0,) and two.schedule_phases() == (0, 500)
    middle = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 450 / 950))  # one schedule: mid-cosine at the switch
    assert [lr_factor(s, one) for s in (0, 49, 500)] == pytest.approx([1 / 50, 1.0, middle])
    assert lr_factor(499, two) == pytest.approx(0.1, abs=1e-4)  # the no-g phase decays to its end
    assert lr_factor(500, two) == pytest.approx(1 / 50) and lr_factor(549, two) == pytest.approx(1.0)
    assert lr_factor(750, two) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 200 / 450)))
    assert lr_factor(999, two) == pytest.approx(0.1, abs=1e-4)
    assert [lr_factor(s, two) for s in range(500)] == [
        lr_factor(s, dataclasses.replace(one, steps=500, no_g_warmup_steps=0)) for s in range(500)
    ]


def test_the_trainer_follows_the_restarted_schedule(tmp_path):
    """The logged lr of a 4-step run with warm-up 2 and the switch at 2: 0.5, 1, then the restart 0.5, 1."""
    config = _config(tmp_path, warmup_steps=2, g_phase_lr_restart=True, min_lr_ratio=0.0)
    Trainer(UnSAMv2Task(config), cpu=True).fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([5e-4, 1e-3, 5e-4, 1e-3])


def test_warmup_trains_plain_sam2_then_switches_to_the_winning_output(tmp_path, monkeypatch):
    """Steps 0-1 call the decoder without g (three outputs) and count each prompt's best output; step 2 copies
    the most-won output's mask token and hypernetwork into the granularity head and asks g from then on."""
    task = UnSAMv2Task(_config(tmp_path))
    module = task.build_module()
    decoder, head = module.model.sam.mask_decoder, module.model.granularity_head
    asked = []
    forward = module.forward

    def spy(features, points, labels, mask_input, granularity, *extra):
        asked.append(granularity is None)
        return forward(features, points, labels, mask_input, granularity, *extra)

    monkeypatch.setattr(module, "forward", spy)
    batch = task.load_samples([0], seed=(0,))
    prompts = len(batch[0].targets)
    for step in (0, 1):
        task.begin_step(module, step)
        task.loss(module, batch)
    assert asked == [True] * 4  # 2 steps x 2 rounds, all plain SAM-2
    assert module.best_counts.sum().item() == 2 * 2 * prompts  # every prompt of every round won once
    module.best_counts.copy_(torch.tensor([1.0, 2.0, 9.0]))  # output 2 = mask token 3 won most
    task.begin_step(module, 2)
    assert torch.equal(head.token.weight, decoder.mask_tokens.weight[3:4])
    copied = decoder.output_hypernetworks_mlps[3].state_dict()
    assert all(torch.equal(v, copied[k]) for k, v in head.hypernetwork.state_dict().items())
    task.loss(module, batch)
    assert asked[4:] == [False, False]  # now with g
    assert "best_counts" not in module.model.state_dict()  # the exported model does not carry it


def test_after_the_switch_the_g_prompt_is_constant_until_trained(tmp_path):
    """The switch zeroes the g prompt encoder's last layer: every g gives the same token (its type embedding),
    so the granularity mask starts as one SAM-2-like mask; before the switch the token varied with g."""
    task = UnSAMv2Task(_config(tmp_path))
    model = task.build_module().model.eval()
    g = torch.tensor([0.1, 0.5, 1.0])
    before = model.granularity_encoder(g)
    assert (before[0] - before[2]).abs().max() > 1e-3
    start_granularity_head(model, 0)
    after = model.granularity_encoder(g)
    assert torch.equal(after[0], after[2])
    assert torch.allclose(after[0], model.granularity_encoder.type_embedding[0])


@pytest.mark.parametrize("restart", [False, True])
def test_resume_across_the_switch_is_bit_for_bit(tmp_path, restart):
    """The win counts live in the checkpoint: runs stopped before (1) and exactly at (2) the switch and resumed
    give the uninterrupted run's loss curve and weights exactly (also with the lr restart at the switch)."""
    changes = {"g_phase_lr_restart": True, "warmup_steps": 2} if restart else {}
    Trainer(UnSAMv2Task(_config(tmp_path, "a", **changes)), cpu=True).fit()

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]

    for stop in (1, 2):
        name = f"stop{stop}"
        assert Trainer(UnSAMv2Task(_config(tmp_path, name, **changes)), cpu=True).fit(stop_after=stop) is None
        Trainer(UnSAMv2Task(_config(tmp_path, name, **changes)), cpu=True).fit(resume=True)
        assert len(losses("a")) == 4 and losses(name) == losses("a")
        a = torch.load(tmp_path / "a/checkpoints/step_000004/state.pt", weights_only=True)["model"]
        b = torch.load(tmp_path / name / "checkpoints/step_000004/state.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("warmup", [2, 0])
def test_g_phase_multimask_loss_trains_the_three_sam2_outputs_after_the_switch(tmp_path, warmup):
    """In the g phase (after the switch at step 2, or from step 0 without a warm-up), ``g_phase_multimask_weight``
    w adds w x the best-of-3 loss of the same pass's three SAM-2 outputs: the loss grows linearly in w and the
    hypernetworks of mask tokens 1-3 (unused by the granularity mask) get gradients only with it."""
    losses, grads = {}, {}
    for weight in (0.0, 1.0, 2.0):
        changes = {"no_g_warmup_steps": warmup, **({"g_phase_multimask_weight": weight} if weight else {})}
        task = UnSAMv2Task(_config(tmp_path, **changes))
        torch.manual_seed(0)
        module = task.build_module()
        task.begin_step(module, warmup)  # g from now on (the switch, or the first step)
        loss = task.loss(module, task.load_samples([0], seed=(0,)))
        loss.backward()
        losses[weight] = float(loss.detach())
        hyper = module.model.sam.mask_decoder.output_hypernetworks_mlps
        grads[weight] = sum(
            float(p.grad.abs().sum()) for m in hyper[1:] for p in m.parameters() if p.grad is not None
        )
    assert grads[0.0] == 0 and grads[1.0] > 0 and grads[2.0] > 0
    assert losses[1.0] > losses[0.0]
    assert losses[2.0] - losses[0.0] == pytest.approx(2 * (losses[1.0] - losses[0.0]), rel=1e-4)


def test_unit_variance_granularity_init_makes_g_as_loud_as_the_type_embedding(tmp_path):
    """PyTorch's Linear init leaves the g-dependent part of the g prompt token a small fraction of its N(0, 1) type
    embedding; ``granularity_init: unit_variance`` gives it unit std per channel (dropout off) and zero biases; the
    config rejects other names."""
    g = torch.linspace(0.1, 1.0, 10)

    def g_part(config):
        encoder = UnSAMv2Task(config).build_module().model.granularity_encoder.eval()
        with torch.no_grad():
            return encoder(g) - encoder.type_embedding[0], encoder

    default, _ = g_part(_config(tmp_path, no_g_warmup_steps=0))
    loud, encoder = g_part(_config(tmp_path, no_g_warmup_steps=0, granularity_init="unit_variance"))
    assert float(default.std()) < 0.35
    assert float(loud.std()) == pytest.approx(1.0, abs=0.1)
    assert all(float(m.bias.abs().max()) == 0 for m in encoder.mlp.mlp if isinstance(m, torch.nn.Linear))
    assert float((loud[0] - loud[-1]).norm()) > 3 * float((default[0] - default[-1]).norm())
    with pytest.raises(InputError, match="granularity_init must be"):
        _config(tmp_path, granularity_init="xavier")


def test_zero_granularity_init_starts_the_g_token_at_zero_and_still_learns_g(tmp_path):
    """``granularity_init: zero`` makes the g prompt token exactly 0 for every g at start (type embedding
    included), while the MLP's last layer still receives a gradient that depends on g, so g can enter."""
    config = _config(tmp_path, no_g_warmup_steps=0, granularity_init="zero")
    encoder = UnSAMv2Task(config).build_module().model.granularity_encoder.eval()
    g = torch.linspace(0.1, 1.0, 10)
    token = encoder(g)
    assert float(token.abs().max()) == 0
    (token * torch.randn_like(token)).sum().backward()
    last = encoder.mlp.mlp[-1]
    assert float(last.weight.grad.abs().sum()) > 0 and float(encoder.type_embedding.grad.abs().sum()) > 0
    default = UnSAMv2Task(_config(tmp_path, no_g_warmup_steps=0)).build_module().model.granularity_encoder
    assert float(default.eval()(g).abs().max()) > 0.5


@pytest.mark.parametrize("warmup", [2, 0])
def test_g_loss_ramp_scales_the_granularity_loss_only(tmp_path, warmup):
    """``g_loss_ramp_steps`` N: at the g phase's k-th step the loss is k / N x the granularity mask's loss + the
    full best-of-3 term (from step ``warmup + N - 1`` on, the unramped loss); checked against the same batch's two
    terms measured apart (the ramp off, best-of-3 weight 0 and 1). Without a best-of-3 term the config refuses."""

    def loss_at(step, **changes):
        task = UnSAMv2Task(_config(tmp_path, no_g_warmup_steps=warmup, **changes))
        torch.manual_seed(0)
        module = task.build_module()
        task.begin_step(module, warmup)  # the switch happens at its own step: weights as at the g phase start
        task.begin_step(module, step)
        return float(task.loss(module, task.load_samples([0], seed=(0,))).detach())

    g_only = loss_at(warmup)  # best-of-3 weight 0: the granularity loss alone
    both = loss_at(warmup, g_phase_multimask_weight=1.0)
    best_of_3 = both - g_only
    assert g_only > 0 and best_of_3 > 0
    for k, expected in ((1, 0.25), (2, 0.5), (4, 1.0), (9, 1.0)):
        ramped = loss_at(warmup + k - 1, g_phase_multimask_weight=1.0, g_loss_ramp_steps=4)
        assert ramped == pytest.approx(expected * g_only + best_of_3, rel=1e-5), k
    with pytest.raises(InputError, match="g_loss_ramp_steps needs g_phase_multimask_weight > 0"):
        _config(tmp_path, g_loss_ramp_steps=4)
    with pytest.raises(InputError, match="g_loss_ramp_steps must be >= 0"):
        _config(tmp_path, g_phase_multimask_weight=1.0, g_loss_ramp_steps=-1)
