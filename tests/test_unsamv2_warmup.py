"""The no-g warm-up of a granularity model trained from scratch (``no_g_warmup_steps``; issue 16's empty-mask
plateau): the first N steps train it as plain SAM-2 (best of 3), then its granularity head starts from the SAM-2
output that won the most prompts."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import tiny_train_config_dict

from granseg.errors import InputError
from granseg.train.trainer import Trainer, load_train_config
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


def test_warmup_trains_plain_sam2_then_switches_to_the_winning_output(tmp_path, monkeypatch):
    """Steps 0-1 call the decoder without g (three outputs) and count each prompt's best output; step 2 copies
    the most-won output's mask token and hypernetwork into the granularity head and asks g from then on."""
    task = UnSAMv2Task(_config(tmp_path))
    module = task.build_module()
    decoder, head = module.model.sam.mask_decoder, module.model.granularity_head
    asked = []
    forward = module.forward

    def spy(features, points, labels, mask_input, granularity):
        asked.append(granularity is None)
        return forward(features, points, labels, mask_input, granularity)

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


def test_resume_across_the_switch_is_bit_for_bit(tmp_path):
    """The win counts live in the checkpoint: runs stopped before (1) and exactly at (2) the switch and resumed
    give the uninterrupted run's loss curve and weights exactly."""
    Trainer(UnSAMv2Task(_config(tmp_path, "a")), cpu=True).fit()

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]

    for stop in (1, 2):
        name = f"stop{stop}"
        assert Trainer(UnSAMv2Task(_config(tmp_path, name)), cpu=True).fit(stop_after=stop) is None
        Trainer(UnSAMv2Task(_config(tmp_path, name)), cpu=True).fit(resume=True)
        assert len(losses("a")) == 4 and losses(name) == losses("a")
        a = torch.load(tmp_path / "a/checkpoints/step_000004/state.pt", weights_only=True)["model"]
        b = torch.load(tmp_path / name / "checkpoints/step_000004/state.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
