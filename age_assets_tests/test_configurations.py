"""The code's defaults are the best CPU recipe per backbone; named configurations are jobs."""

from __future__ import annotations

import dagster as dg

from age_assets.assets.models import CLASSIFIER, REGRESSOR, changed_settings
from age_assets.assets.names import CONFIGURATION_TAG
from age_assets.configurations import CONFIGURATIONS
from age_assets.definitions import build_defs
from age_assets.ml.recipes import CPU_RECIPES, UNMEASURED


def test_each_training_asset_defaults_to_its_backbones_recipe() -> None:
    for (backbone, kind_name), recipe in CPU_RECIPES.items():
        kind = REGRESSOR if kind_name == "model" else CLASSIFIER
        defaults = kind.config_for(backbone)()
        assert {k: getattr(defaults, k) for k in recipe.as_dict()} == recipe.as_dict(), (backbone, kind_name)
    unmeasured = REGRESSOR.config_for("nasnet_mobile")()
    assert (unmeasured.train_last, unmeasured.learning_rate) == (UNMEASURED.train_last, UNMEASURED.learning_rate)
    assert REGRESSOR.config_for("mobilenet_v2")().loss == "mae", "shared defaults come from FitSpec"


def test_settings_that_differ_from_the_defaults_are_named() -> None:
    config = REGRESSOR.config_for("mobilenet_v2")
    assert changed_settings(config()) == "defaults"
    assert changed_settings(config(epochs=3, output="linear")) == "epochs=3,output=linear"


def test_named_configurations_are_jobs_that_set_every_training_asset_and_tag_their_runs() -> None:
    defs = build_defs({"AGE_ASSETS_BACKBONES": "mobilenet_v3_small,mobilenet_v2"})
    repository = defs.get_repository_def()
    trained = {f"{kind}_{b}" for kind in ("model", "classifier") for b in ("mobilenet_v3_small", "mobilenet_v2")}
    best = repository.get_job("best_cpu_graph")
    assert best.tags[CONFIGURATION_TAG] == "best_cpu"
    for name, (_, settings) in CONFIGURATIONS.items():
        job = repository.get_job(f"{name}_graph")
        assert job.tags[CONFIGURATION_TAG] == name
        ops = job.run_config["ops"]
        assert set(ops) == trained and all(op["config"] == settings for op in ops.values())
        assert dg.AssetKey("exported_model") in job.asset_layer.executable_asset_keys
