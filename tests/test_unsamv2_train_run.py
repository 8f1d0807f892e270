"""UnSAMv2 training runs on a tiny random SAM-2: only granularity modules + LoRA train (the rest frozen and
unchanged), one pre-processing path, cached embeddings, bit-for-bit resume, export loadable by the CLI, and the
2-process gloo path of ``accelerate launch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import tiny_train_config_dict

from granseg.cli import main
from granseg.models.registry import load_model
from granseg.models.unsamv2 import UnSAMv2Model, tiny_config
from granseg.predict.unsamv2 import UnSAMv2Predictor
from granseg.train.trainer import Trainer, load_train_config
from granseg.train.unsamv2_task import UnSAMv2Task

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def _config_dict(tmp_path, name="run", **changes) -> dict:
    return tiny_train_config_dict(tmp_path, name, **changes)


def _config(tmp_path, name="run", **changes):
    return load_train_config(json.dumps(_config_dict(tmp_path, name, **changes)))


def test_only_granularity_and_lora_train_and_the_rest_is_unchanged_after_steps(tmp_path):
    config = _config(tmp_path, steps=2)
    torch.manual_seed(config.seed)
    initial = {k: v.clone() for k, v in UnSAMv2Task(config).build_module().model.state_dict().items()}
    module = UnSAMv2Task(config).build_module()
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("granularity_") or ".lora_" in n for n in trainable)
    assert sum(".lora_" in n for n in trainable) == 56  # A and B of 28 sites
    exported = Trainer(UnSAMv2Task(config), cpu=True).fit()
    trained = load_model(str(tmp_path / "run"), device="cpu").state_dict()
    assert trained.keys() == initial.keys()
    frozen_changed = [k for k in initial if k not in trainable and not torch.equal(initial[k], trained[k])]
    assert frozen_changed == []
    assert any(not torch.equal(initial[k], trained[k]) for k in trainable)
    assert (exported / "unsamv2.safetensors").is_file()


def test_training_embeddings_are_the_predictors_and_cached_once(tmp_path, monkeypatch):
    data = {**_config_dict(tmp_path)["data"], "flip": False}
    config = _config(tmp_path, steps=6, data=data)
    task = UnSAMv2Task(_config(tmp_path, steps=6, data=data, cache_embeddings=False))
    module = task.build_module()
    calls = []
    original = UnSAMv2Model.embed_image
    monkeypatch.setattr(UnSAMv2Model, "embed_image", lambda self, px: calls.append(1) or original(self, px))
    item = task.prepare(0, np.random.default_rng(0))
    reference = UnSAMv2Predictor(module.model, decoder="reference")
    reference.set_image(task.dataset.load(0, np.random.default_rng(0)).image)
    for ours, theirs in zip(item.features, reference.image_embeddings):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    calls.clear()
    Trainer(UnSAMv2Task(config), cpu=True).fit()
    assert len(calls) == 3  # 3 scenes x 6 steps: each embedded once, later epochs read the disk cache
    assert len(list((tmp_path / "run" / "embedding_cache").glob("*.safetensors"))) == 3
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,lr,seconds,masks_per_s") and len(rows) == 7


def test_resume_continues_bit_for_bit(tmp_path):
    Trainer(UnSAMv2Task(_config(tmp_path, "a")), cpu=True).fit()
    trainer = Trainer(UnSAMv2Task(_config(tmp_path, "b")), cpu=True)
    assert trainer.fit(stop_after=2) is None
    Trainer(UnSAMv2Task(_config(tmp_path, "b")), cpu=True).fit(resume=True)

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]

    assert len(losses("a")) == 4 and losses("a") == losses("b")  # exact, not approximate
    a = load_model(str(tmp_path / "a"), device="cpu").state_dict()
    b = load_model(str(tmp_path / "b"), device="cpu").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _synth_coco(folder: Path) -> Path:
    from pycocotools import mask as mask_utils

    from granseg.synth import SynthConfig, generate_scene

    folder.mkdir()
    images, annotations = [], []
    for i in range(2):
        scene = generate_scene(500 + i, SynthConfig(size=96, num_objects=(1, 1)))
        Image.fromarray(scene.image).save(folder / f"s{i}.png")
        images.append({"id": i + 1, "file_name": f"s{i}.png", "height": 96, "width": 96})
        for node in scene.level_nodes("part")[:2]:
            rle = mask_utils.encode(np.asfortranarray(node.mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                    "area": int(node.area),
                    "iscrowd": 0,
                }
            )
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_config_file_trains_and_the_output_folder_loads_in_segment_and_eval(tmp_path):
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(_config_dict(tmp_path, "out", steps=50, max_steps=2)))
    assert main(["train", "--config", str(config_path), "--device", "cpu", "--quiet"]) == 0
    out = tmp_path / "out"
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 2  # max_steps shortens
    annotations = _synth_coco(tmp_path / "coco")
    args = ["--model", str(out), "--device", "cpu", "--quiet"]
    assert main(["segment", str(tmp_path / "coco" / "s0.png"), "--point", "40,40", "--granularity", "0.2",
                 "--out", str(tmp_path / "m.png"), *args]) == 0  # fmt: skip
    assert (tmp_path / "m.png").is_file()
    assert main(["eval", "interactive", "--dataset", "coco", "--data-root", str(tmp_path / "coco"),
                 "--annotations", str(annotations), "--out", str(tmp_path / "eval"), "--max-clicks", "2",
                 *args]) == 0  # fmt: skip
    assert any((tmp_path / "eval").iterdir())


@pytest.mark.slow  # two fresh Python processes importing torch + transformers: ~25 s on the shared machine
def test_accelerate_launch_two_cpu_processes_with_gloo(tmp_path):
    config_path = tmp_path / "ddp.json"
    config_path.write_text(json.dumps(_config_dict(tmp_path, "ddp", steps=2, batch_size=1)))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    # --multi_gpu selects accelerate's torchrun launcher; with --device cpu each process joins a gloo group
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "granseg", "train", "--config", str(config_path), "--device", "cpu", "--quiet"]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]  # written once (main process), not twice
    assert (tmp_path / "ddp" / "model" / "unsamv2.safetensors").is_file()
    # 2 steps x 2 processes x batch 1 = 4 samples over 3 scenes: every scene embedded (one process sees only 2)
    assert len(list((tmp_path / "ddp" / "embedding_cache").glob("*.safetensors"))) == 3


def test_example_configs_parse_and_tiny_synth_runs_shortened_and_redirected(tmp_path):
    paper = load_train_config(REPO / "configs" / "unsamv2_sa1b.json")
    assert (paper.lr, paper.batch_size, paper.steps, paper.data.max_masks) == (1e-4, 4, 7500, 30)
    assert paper.steps * paper.batch_size == 6000 * 5  # 6,000 images x 5 epochs
    data = json.loads((REPO / "configs" / "tiny_synth.json").read_text())
    data.update(max_steps=1, output_dir=str(tmp_path / "tiny"))
    (tmp_path / "tiny.json").write_text(json.dumps(data))
    assert main(["train", "--config", str(tmp_path / "tiny.json"), "--device", "cpu", "--quiet"]) == 0
    assert load_model(str(tmp_path / "tiny"), device="cpu").config.granularity


def test_init_from_a_plain_sam2_checkpoint_adds_granularity_and_lora(tmp_path):
    from granseg.models.checkpoints import save_package
    from granseg.train.unsamv2_task import build_training_model

    torch.manual_seed(1)
    plain = UnSAMv2Model(tiny_config(name="plain", granularity=False, lora=None))
    save_package(plain, tmp_path / "plain.safetensors")
    data = _config_dict(tmp_path, init_from=str(tmp_path / "plain.safetensors"))
    del data["model"]
    model = build_training_model(load_train_config(json.dumps(data)))
    assert model.config.granularity and model.config.lora is not None
    ours = model.state_dict()
    for key, value in plain.state_dict().items():
        mapped = key if key in ours else key.replace(".q_proj.", ".q_proj.base_layer.")
        mapped = mapped if mapped in ours else next(k for k in ours if k.replace(".base_layer", "") == key)
        assert torch.equal(ours[mapped], value), key


def test_out_of_memory_says_what_to_lower(tmp_path, monkeypatch):
    from granseg.errors import InputError

    def explode(self, module, batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(UnSAMv2Task, "loss", explode)
    with pytest.raises(InputError, match="lower batch_size"):
        Trainer(UnSAMv2Task(_config(tmp_path)), cpu=True).fit()


def test_extra_trainable_never_reaches_the_cached_embedding(tmp_path):
    from granseg.train.unsamv2_task import build_training_model

    config = _config(tmp_path, extra_trainable=["sam.mask_decoder.", "sam.prompt_encoder."])
    trainable = {n for n, p in build_training_model(config).named_parameters() if p.requires_grad}
    assert any(n.startswith("sam.mask_decoder.output_hypernetworks") for n in trainable)
    assert not any(".conv_s0." in n or ".conv_s1." in n or "vision_encoder" in n for n in trainable)


def test_train_image_encoder_trains_every_parameter_through_the_pixels(tmp_path):
    """Stage 1 of a from-scratch model: the encoder trains (gradients through the pixels, no cache)."""
    from granseg.errors import InputError

    with pytest.raises(InputError, match="cache_embeddings"):
        _config(tmp_path, train_image_encoder=True)
    model = tiny_config(granularity=False, lora=None).to_dict()
    config = _config(
        tmp_path, model=model, train_image_encoder=True, cache_embeddings=False, steps=2, correction_clicks=1
    )
    torch.manual_seed(config.seed)
    initial = {k: v.clone() for k, v in UnSAMv2Task(config).build_module().model.state_dict().items()}
    Trainer(UnSAMv2Task(config), cpu=True).fit()
    trained = load_model(str(tmp_path / "run"), device="cpu").state_dict()
    changed = {k for k in initial if not torch.equal(initial[k], trained[k])}
    assert any(k.startswith("sam.vision_encoder.") for k in changed)
    assert any(".conv_s0." in k for k in changed)
    assert any(k.startswith("sam.prompt_encoder.") for k in changed)
    assert not (tmp_path / "run" / "embedding_cache").exists()


def test_random_init_model_passes_the_click_to_the_mask(tmp_path):
    """Regression (issue 16): a model trained from scratch took transformers' N(0, 0.02) init of every layer, under
    which the tiny SAM-2's logits were ~1e-5 everywhere and blind to the click (training collapsed to empty masks).
    build_training_model re-initialises the SAM-2 layers like PyTorch / Meta do; LoRA stays a no-op at start."""
    from granseg.train.unsamv2_task import build_training_model

    config = _config(tmp_path)
    torch.manual_seed(0)
    model = build_training_model(config).eval()
    pixels = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, 128, 128)).astype(np.float32))
    points = torch.tensor([[[[20.0, 20.0]], [[100.0, 100.0]]]])
    with torch.no_grad():
        low_res = model(pixel_values=pixels, input_points=points, granularity=torch.full((1, 2), 0.5))
        low_res = low_res.mask_logits[0, :, 0]
    assert low_res.std(dim=(1, 2)).min() > 1e-2  # the logits vary over the image (old init: ~4e-5)
    assert (low_res[0] - low_res[1]).abs().mean() > 1e-2  # and with the click (old init: ~4e-5)
    assert low_res.std() < 1e2  # no exploding signal either
    lora_b = [p for n, p in model.named_parameters() if ".lora_B." in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)


def test_max_prompts_trains_a_subset_and_nearest_level_asks_g_within_the_levels_at_the_click(
    tmp_path, monkeypatch
):
    """max_prompts 2 of 4 masks: the decoder sees 2 prompts per round; with granularity_sampling nearest_level the
    requested g differs from the labels but stays in [0.1, 1]."""
    config = _config(tmp_path, max_prompts=2, granularity_sampling="nearest_level", correction_clicks=1)
    task = UnSAMv2Task(config)
    module = task.build_module()
    batch = task.load_samples([0], seed=(0,))
    assert len(batch[0].targets) == 4 and task.masks_per_batch(batch) == 2
    seen = []
    forward = module.forward

    def spy(features, points, labels, mask_input, granularity, *extra):
        seen.append((points.shape[0], granularity.clone()))
        return forward(features, points, labels, mask_input, granularity, *extra)

    monkeypatch.setattr(module, "forward", spy)
    loss = task.loss(module, batch)
    assert torch.isfinite(loss) and [count for count, _ in seen] == [2, 2]
    asked = seen[0][1]
    assert torch.equal(asked, seen[1][1]) and bool(((asked >= 0.1) & (asked <= 1.0)).all())
    assert not any(np.isclose(asked.numpy(), g).any() for g in batch[0].granularity)  # drawn, not the labels
