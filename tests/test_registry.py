"""The ``"module:attr"`` registries (models, training tasks, datasets, predictors) and their one resolver."""

from __future__ import annotations

import warnings

import pytest

from granseg.registry_utils import resolve_target


def test_every_registered_model_builder_resolves():
    from granseg.models.registry import list_models

    entries = list_models()
    assert len(entries) >= 20
    for entry in entries:
        assert callable(entry.resolve_builder()), entry.name


def test_every_training_task_and_dataset_resolves():
    from granseg.eval.datasets import _DATASETS
    from granseg.train.trainer import TASKS, resolve_task

    for name in TASKS:
        task_class, config_class = resolve_task(name)
        assert isinstance(task_class, type) and isinstance(config_class, type)
    for name, target in _DATASETS.items():
        assert isinstance(resolve_target(target), type), name


def test_every_predictor_pair_resolves():
    from granseg.predict.factory import PREDICTORS

    for model_target, predictor_target in PREDICTORS:
        assert isinstance(resolve_target(model_target), type)
        assert isinstance(resolve_target(predictor_target), type)


def test_resolver_names_what_is_wrong():
    assert resolve_target("granseg.registry_utils:resolve_target") is resolve_target
    assert resolve_target("granseg.predict.base:Prediction.best") is not None  # dotted attribute
    with pytest.raises(ValueError, match="not of the form"):
        resolve_target("granseg.registry_utils.resolve_target")
    with pytest.raises(AttributeError, match="'granseg.registry_utils:missing'"):
        resolve_target("granseg.registry_utils:missing")
    with pytest.raises(ImportError):
        resolve_target("granseg.no_such_module:x")


def test_registering_a_name_twice_warns_and_replaces(monkeypatch):
    from granseg.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.register_model("probe", "test", "granseg.predict.hierarchy:build_hierarchy", "first")
    with pytest.warns(UserWarning, match="'probe' registered twice"):
        registry.register_model("probe", "test", "granseg.eval.baselines:build_grabcut_baseline", "second")
    assert registry.get_entry("probe").description == "second"


def test_a_model_without_a_registered_predictor_is_refused():
    from granseg.errors import InputError
    from granseg.predict.factory import create_predictor

    with pytest.raises(InputError, match="no predictor for model"):
        create_predictor(object())
