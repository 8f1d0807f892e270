"""UnSAMv2 / SAM-2 checkpoints: safe reading (:mod:`.safe_io`), key names (:mod:`.keymap`), strict key reports
(:mod:`.report`), layout converters and LoRA merging (:mod:`.convert`), writing (:mod:`.save`), loading any layout
(:mod:`.loading`) and the registered names' local weights (:mod:`.named`). See :mod:`.loading` for the layouts."""

from granseg.models.checkpoints.convert import (
    config_from_meta_keys,
    infer_meta_config,
    merge_lora,
    merged_state_dict,
    meta_to_package_state_dict,
    to_meta_state_dict,
)
from granseg.models.checkpoints.keymap import PACKAGE_FORMAT, PASSTHROUGH_PREFIX, package_key_to_meta
from granseg.models.checkpoints.loading import load_model_from_path, load_with_report, with_overrides
from granseg.models.checkpoints.named import build_named_model, weight_candidates
from granseg.models.checkpoints.report import KeyReport, load_package_state_dict
from granseg.models.checkpoints.safe_io import safe_safetensors_load, safe_torch_load
from granseg.models.checkpoints.save import config_path_for, save_meta, save_package

__all__ = [
    "PACKAGE_FORMAT",
    "PASSTHROUGH_PREFIX",
    "KeyReport",
    "build_named_model",
    "config_from_meta_keys",
    "config_path_for",
    "infer_meta_config",
    "load_model_from_path",
    "load_package_state_dict",
    "load_with_report",
    "merge_lora",
    "merged_state_dict",
    "meta_to_package_state_dict",
    "package_key_to_meta",
    "safe_safetensors_load",
    "safe_torch_load",
    "save_meta",
    "save_package",
    "to_meta_state_dict",
    "weight_candidates",
    "with_overrides",
]
