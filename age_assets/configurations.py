"""Named training configurations besides the code's defaults, each an asset job the UI can launch.

The code's defaults are the best configuration measured on 2 CPU cores (``ml/recipes.py``); the
job ``best_cpu_graph`` runs the whole graph with them, as the Materialize button does. The others
set the same values for every regressor and classifier.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from age_assets.assets.names import CONFIGURATION_TAG
from age_assets.ml.recipes import KINDS

CONFIGURATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "quick": ("Frozen backbones: heads trained on cached pooled features of the plain training split. "
              "About a quarter of the best configuration's time, about 1.7 years worse.",
              {"train_last": 0, "train_on": "plain", "learning_rate": 1e-3, "schedule": "constant", "epochs": 100,
               "patience": 10}),
    "gpu": ("Every backbone layer trains (BatchNormalization stays frozen) on batches streamed from "
            "augmented_train; nothing is cached. Sized for a GPU; not measured on one.",
            {"train_last": -1, "train_on": "augmented", "learning_rate": 1e-4, "schedule": "cosine", "epochs": 40,
             "patience": 40}),
}
"""name -> (what it is, settings for every trained asset)."""


def run_config(settings: dict[str, Any], backbones: list[str]) -> dict[str, Any]:
    return {"ops": {f"{kind}_{b}": {"config": dict(settings)} for kind in KINDS for b in backbones}}


def configuration_jobs(backbones: list[str]) -> list[dg.UnresolvedAssetJobDefinition]:
    """``best_cpu_graph`` (the defaults) and one ``<name>_graph`` per named configuration, each
    tagging its runs with the configuration's name."""
    jobs = [dg.define_asset_job(
        "best_cpu_graph", selection=dg.AssetSelection.all(), tags={CONFIGURATION_TAG: "best_cpu"},
        description="The whole graph with the code's defaults: the best configuration measured on 2 CPU cores.",
    )]
    for name, (description, settings) in CONFIGURATIONS.items():
        jobs.append(dg.define_asset_job(
            f"{name}_graph", selection=dg.AssetSelection.all(), config=run_config(settings, backbones),
            tags={CONFIGURATION_TAG: name}, description=f"The whole graph, {name} configuration. {description}",
        ))
    return jobs
