"""The code location: assets, resources and IO manager, configured from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from age_assets.assets.bucket_ensemble import bucket_ensemble_asset
from age_assets.assets.checks import image_arrays_are_sound, model_check
from age_assets.assets.dataset import augmented_train, image_arrays, raw_dataset
from age_assets.assets.export import export_asset, exports_agree_with_keras
from age_assets.assets.model_card import model_card
from age_assets.assets.models import classifier_asset, ensemble_asset, model_asset
from age_assets.assets.promotion import PromotionGate, not_worse_than_promoted, promoted_model
from age_assets.assets.report import report_asset
from age_assets.automation import DEFAULT_RETRAIN_CRON, raw_data_changed, retraining_schedule
from age_assets.configurations import configuration_jobs
from age_assets.io_managers import ArtifactIOManager
from age_assets.ml.backbones import get_backbone
from age_assets.resources import Accelerator, BackboneWeights, DatasetSource, ExperimentTracking, Storage

DEFAULT_BACKBONES = "mobilenet_v3_small,mobilenet_v1_faces"

ENV_DATASET = "AGE_ASSETS_DATASET"
ENV_TEST_DATASET = "AGE_ASSETS_TEST_DATASET"
ENV_DATA_DIR = "AGE_ASSETS_DATA_DIR"
ENV_APPA_URL = "AGE_ASSETS_APPA_URL"
ENV_APPA_CHECKSUM = "AGE_ASSETS_APPA_CHECKSUM"
ENV_BACKBONES = "AGE_ASSETS_BACKBONES"
ENV_WEIGHTS_DIR = "AGE_ASSETS_WEIGHTS_DIR"
ENV_RETRAIN_CRON = "AGE_ASSETS_RETRAIN_CRON"
ENV_MIXED_PRECISION = "AGE_ASSETS_MIXED_PRECISION"
ENV_EXECUTOR = "AGE_ASSETS_EXECUTOR"
ENV_KEEP_VERSIONS = "AGE_ASSETS_KEEP_VERSIONS"
ENV_MLFLOW_URI = "AGE_ASSETS_MLFLOW_URI"
ENV_PROMOTION_TOLERANCE = "AGE_ASSETS_PROMOTION_TOLERANCE"


FORKED_STEPS = dg.multiprocess_executor.configured(
    lambda config: {"max_concurrent": config["max_concurrent"], "start_method": {config["start_method"]: {}}},
    name="multiprocess",
    config_schema={
        "max_concurrent": dg.Field(int, default_value=0, description="Steps at a time; 0: one per CPU core"),
        "start_method": dg.Field(
            dg.Enum("StartMethod", [dg.EnumValue("forkserver"), dg.EnumValue("spawn")]), default_value="forkserver",
            description="forkserver: steps fork from a process that imported the code location once; spawn: a new "
                        "interpreter per step (Dagster's default)"),
    },
)
"""A process per step, forked from a server that has imported Dagster and this code location once.

Dagster's default start method spawns every step as a new interpreter that imports both again:
seconds a step, which was most of an unchanged rerun, where every step only finds its artifact
(``bench/step_start.sh``). Nothing imported at that point has started threads or TensorFlow (a test
holds ``import age_assets`` to that), so forking is safe; steps that train import TensorFlow after.
"""


def executor_from(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """``multiprocess`` (default: a process per step on this machine, forked: ``FORKED_STEPS``) or
    ``k8s`` (a pod per step, from the ``k8s`` extra; training steps ask for one GPU each)."""
    name = env.get(ENV_EXECUTOR, "multiprocess")
    if name == "multiprocess":
        return FORKED_STEPS
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"{ENV_EXECUTOR}={name!r}: use 'multiprocess' or 'k8s'")


def build_assets(backbones: list[str]) -> list[dg.AssetsDefinition]:
    """The whole graph for these backbones: data, a model and a classifier each, both ensembles, report,
    the exported model and the promoted one."""
    for name in backbones:
        get_backbone(name)
    return [
        raw_dataset, image_arrays, augmented_train,
        *[model_asset(b) for b in backbones],
        *[classifier_asset(b) for b in backbones],
        ensemble_asset(backbones),
        bucket_ensemble_asset(backbones),
        report_asset(backbones),
        export_asset(backbones),
        model_card,
        promoted_model,
    ]


def build_checks(backbones: list[str]) -> list[dg.AssetChecksDefinition]:
    """Blocking checks on image_arrays, every regressor and classifier, and the exported model (it agrees
    with Keras and is not worse than the promoted model)."""
    trained = [f"{kind}_{b}" for kind in ("model", "classifier") for b in backbones] + ["bucket_ensemble"]
    return [image_arrays_are_sound, *[model_check(name) for name in trained], exports_agree_with_keras,
            not_worse_than_promoted]


def keep_versions_from(env: Mapping[str, str]) -> int:
    """``AGE_ASSETS_KEEP_VERSIONS``: versions to keep of each asset after it materializes; 0, empty
    or unset keeps all."""
    value = env.get(ENV_KEEP_VERSIONS, "").strip() or "0"
    if not (value.isascii() and value.isdecimal()):
        raise ValueError(f"{ENV_KEEP_VERSIONS}={value!r}: give a whole number of versions to keep (0 keeps all)")
    return int(value)


def backbones_from(env: Mapping[str, str]) -> list[str]:
    return [b.strip() for b in env.get(ENV_BACKBONES, DEFAULT_BACKBONES).split(",") if b.strip()]


def build_defs(env: Mapping[str, str] = os.environ) -> dg.Definitions:
    """Definitions for the settings in ``env`` (the process environment by default)."""
    data_dir = env.get(ENV_DATA_DIR, "data")
    download: dict[str, Any] = {field: env[name] for field, name in
                (("appa_real_url", ENV_APPA_URL), ("appa_real_checksum", ENV_APPA_CHECKSUM)) if name in env}
    source = DatasetSource(spec=env.get(ENV_DATASET, "appa-real"), test_spec=env.get(ENV_TEST_DATASET, ""), **download)
    backbones = backbones_from(env)
    promotion = {"tolerance_years": float(env[ENV_PROMOTION_TOLERANCE])} if env.get(ENV_PROMOTION_TOLERANCE) else {}
    storage = Storage(data_dir=data_dir, keep_versions=keep_versions_from(env))
    return dg.Definitions(
        assets=build_assets(backbones),
        asset_checks=build_checks(backbones),
        jobs=configuration_jobs(backbones),
        schedules=[retraining_schedule(env.get(ENV_RETRAIN_CRON, DEFAULT_RETRAIN_CRON))],
        sensors=[raw_data_changed],
        executor=executor_from(env),
        resources={
            "dataset": source,
            "storage": storage,
            "weights": BackboneWeights(weights_dir=env.get(ENV_WEIGHTS_DIR, "")),
            "accelerator": Accelerator(mixed_precision=env.get(ENV_MIXED_PRECISION, "") in ("1", "true", "yes")),
            "io_manager": ArtifactIOManager(storage=storage),
            "tracking": ExperimentTracking(mlflow_uri=env.get(ENV_MLFLOW_URI, "")),
            "promotion": PromotionGate(**promotion),
        },
    )


defs = build_defs()
