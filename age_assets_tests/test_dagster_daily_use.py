"""Living with the graph: staleness, unchanged reruns, checks, schedule, sensor, accelerator, k8s."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._utils.test.data_versions import get_stale_status_resolver

from age_assets.artifacts import TrainedModel
from age_assets.assets.checks import classifier_against_baseline, regressor_against_baseline
from age_assets.assets.dataset import ImageArraysConfig, image_arrays
from age_assets.assets.versioning import code_version
from age_assets.definitions import build_defs
from age_assets.resources import Accelerator, DatasetSource
from age_assets_tests.conftest import write_utkface, zip_folder

DATA = ["raw_dataset", "image_arrays", "augmented_train"]
SMALL = {"ops": {"image_arrays": {"config": {"image_size": 24}}, "augmented_train": {"config": {"factor": 2}}}}


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, selection: list[str],
         config: Mapping | None = None, assets: list | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize([*(assets or defs.assets), *defs.asset_checks], resources=defs.resources,
                          selection=selection, run_config=dict(config or SMALL), instance=instance,
                          raise_on_error=False)


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    write_utkface(tmp_path / "faces", n=60)
    return tmp_path / "faces"


@pytest.fixture
def defs(tmp_path: Path, faces: Path) -> dg.Definitions:
    return build_defs({"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_DATA_DIR": str(tmp_path / "data"),
                       "AGE_ASSETS_BACKBONES": "mobilenet_v3_small"})


def _statuses(instance: dg.DagsterInstance, assets: list) -> dict[str, str]:
    resolver = get_stale_status_resolver(instance, assets)
    return {name: resolver.get_status(dg.AssetKey(name)).value for name in DATA}


def test_changed_run_config_unsyncs_exactly_what_is_downstream(defs: dg.Definitions) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert _run(defs, instance, DATA).success
    assert _statuses(instance, list(defs.assets)) == {n: "FRESH" for n in DATA}
    bigger = {"ops": {"image_arrays": {"config": {"image_size": 32}}}}
    assert _run(defs, instance, ["image_arrays"], bigger).success
    assert _statuses(instance, list(defs.assets)) == {
        "raw_dataset": "FRESH", "image_arrays": "FRESH", "augmented_train": "STALE"}


def test_edited_default_in_code_unsyncs_exactly_what_is_downstream(defs: dg.Definitions) -> None:
    class EditedConfig(ImageArraysConfig):
        image_size: int = 160

    edited_version = code_version("1", EditedConfig)
    assert edited_version != image_arrays.code_versions_by_key[image_arrays.key], \
        "the code version must follow the config defaults"
    instance = dg.DagsterInstance.ephemeral()
    assert _run(defs, instance, DATA).success
    edited = [a.map_asset_specs(lambda spec: spec.replace_attributes(code_version=edited_version))
              if a.key == image_arrays.key else a for a in defs.assets]
    assert _statuses(instance, edited) == {"raw_dataset": "FRESH", "image_arrays": "STALE", "augmented_train": "FRESH"}
    # Rebuilt under the edited code (the new default stands in as run config), its data version
    # changes, and so everything downstream is unsynced.
    assert _run(defs, instance, ["image_arrays"], {"ops": {"image_arrays": {"config": {"image_size": 160}}}},
                assets=edited).success
    assert _statuses(instance, edited) == {"raw_dataset": "FRESH", "image_arrays": "FRESH", "augmented_train": "STALE"}


def test_unchanged_rerun_computes_nothing(defs: dg.Definitions) -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = _run(defs, instance, DATA)
    second = _run(defs, instance, DATA)
    assert second.success
    for name in DATA:
        before = first.asset_materializations_for_node(name)[0]
        after = instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization
        assert after.metadata["reused"].value is True, f"{name} was computed again"
        assert after.tags["dagster/data_version"] == before.tags["dagster/data_version"]
        built = before.metadata
        assert "reuse_seconds" not in built and built["build_peak_rss_mb"].value > 0
        for key in ("build_seconds", "build_peak_rss_mb"):
            assert after.metadata[key].value == built[key].value, f"{name}: the build's own {key} is shown on reuse"
        assert after.metadata["reuse_seconds"].value >= 0 and "reuse_peak_rss_mb" in after.metadata


def _check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_failed_blocking_check_stops_what_is_downstream(tmp_path: Path, faces: Path) -> None:
    """The test set is the training folder again, so images sit in two splits."""
    leaky = build_defs({"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_TEST_DATASET": f"utkface:{faces}",
                        "AGE_ASSETS_DATA_DIR": str(tmp_path / "data"), "AGE_ASSETS_BACKBONES": "mobilenet_v3_small"})
    result = _run(leaky, dg.DagsterInstance.ephemeral(), DATA)
    assert _check_evaluations(result) == {"image_arrays_are_sound": False}
    assert result.asset_materializations_for_node("image_arrays")
    assert not result.asset_materializations_for_node("augmented_train"), "downstream ran despite the failed check"
    metadata = next(e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION") \
        .asset_check_evaluation_data.metadata
    assert metadata["problems"].value == len(metadata["problem_list"].value.splitlines()) >= 1
    assert "images in both train and test" in metadata["problem_list"].value


def test_sound_data_passes_its_check(defs: dg.Definitions) -> None:
    result = _run(defs, dg.DagsterInstance.ephemeral(), DATA)
    assert _check_evaluations(result) == {"image_arrays_are_sound": True}
    assert result.asset_materializations_for_node("augmented_train")


def _fake_model(folder: Path, column: str, predictions: dict[str, np.ndarray], classifier: bool) -> TrainedModel:
    folder.mkdir()
    (folder / "info.json").write_text(json.dumps({"target": column}))
    rows = []
    for split, pred in predictions.items():
        rows.append(pd.DataFrame({"split": split, "row": np.arange(len(pred)),
                                  "bucket" if classifier else "age": pred}))
    pd.concat(rows).to_csv(folder / "predictions.csv", index=False)
    return TrainedModel(folder, "x")


class _Labels:
    def __init__(self, ages: dict[str, np.ndarray]):
        self.ages = ages

    def labels(self, split: str) -> pd.DataFrame:
        return pd.DataFrame({"real_age": self.ages[split]})


def test_model_checks_compare_with_trivial_baselines(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ages = {"train": rng.uniform(1, 90, 400).round(), "valid": rng.uniform(1, 90, 100).round()}
    images = _Labels(ages)
    good = _fake_model(tmp_path / "good", "real_age", {"valid": ages["valid"] + rng.normal(0, 3, 100)}, False)
    flat = _fake_model(tmp_path / "flat", "real_age", {"valid": np.full(100, 45.0)}, False)
    assert regressor_against_baseline(good, images)[0]
    passed, scores = regressor_against_baseline(flat, images)
    assert not passed and scores["val_mae"] >= 0.9 * scores["mean_predictor_val_mae"]
    from age_assets.ml.buckets import age_to_bucket
    right = _fake_model(tmp_path / "right", "real_age", {"valid": age_to_bucket(ages["valid"])}, True)
    common = _fake_model(tmp_path / "common", "real_age", {"valid": np.full(100, 4)}, True)
    assert classifier_against_baseline(right, images)[0]
    assert not classifier_against_baseline(common, images)[0]


def test_schedule_retrains_models_and_report_and_is_stopped_by_default(tmp_path: Path) -> None:
    defs = build_defs({"AGE_ASSETS_DATA_DIR": str(tmp_path), "AGE_ASSETS_BACKBONES": "mobilenet_v3_small",
                       "AGE_ASSETS_RETRAIN_CRON": "30 2 * * 0"})
    schedule = defs.get_repository_def().get_schedule_def("weekly_retraining")
    assert schedule.cron_schedule == "30 2 * * 0"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    job = defs.get_repository_def().get_job(schedule.job_name)
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey(k) for k in (
        "model_mobilenet_v3_small", "classifier_mobilenet_v3_small", "ensemble", "bucket_ensemble", "evaluation_report",
        "exported_model", "model_card", "promoted_model")}
    with dg.build_schedule_context(scheduled_execution_time=pd.Timestamp("2026-11-29 02:30", tz="UTC")) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    assert build_defs({"AGE_ASSETS_DATA_DIR": str(tmp_path)}).get_repository_def() \
        .get_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"


def _evaluate_sensor(defs: dg.Definitions, source: DatasetSource, cursor: str | None) -> dg.SensorResult:
    sensor = defs.get_repository_def().get_sensor_def("raw_data_changed")
    with dg.build_sensor_context(cursor=cursor, resources={"dataset": source}) as context:
        return sensor.evaluate_tick(context)


@pytest.mark.parametrize("layout", ["utkface folder", "appa-real archive"])
def test_sensor_requests_a_run_when_raw_data_changes(tmp_path: Path, faces: Path, layout: str) -> None:
    defs = build_defs({"AGE_ASSETS_DATA_DIR": str(tmp_path / "data")})
    assert defs.get_repository_def().get_sensor_def("raw_data_changed").default_status == dg.DefaultSensorStatus.STOPPED
    if layout == "utkface folder":
        source = DatasetSource(spec=f"utkface:{faces}")
        def change() -> None:
            write_utkface(faces, n=3, start=500)
    else:
        archive = zip_folder(faces, tmp_path / "release.zip")
        source = DatasetSource(spec=f"appa-real:{archive}")
        def change() -> None:
            write_utkface(faces, n=3, start=500)
            archive.unlink()
            zip_folder(faces, archive)

    first = _evaluate_sensor(defs, source, None)
    assert not first.run_requests and first.cursor
    unchanged = _evaluate_sensor(defs, source, first.cursor)
    assert not unchanged.run_requests and unchanged.cursor == first.cursor
    change()
    changed = _evaluate_sensor(defs, source, first.cursor)
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor
    again = _evaluate_sensor(defs, source, changed.cursor)
    assert not again.run_requests


def test_accelerator_falls_back_to_the_cpu_here() -> None:
    import keras

    assert Accelerator(mixed_precision=True).activate() == "CPU"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_accelerator_sets_up_a_gpu_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras
    import tensorflow as tf

    grown = []
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda device, on: grown.append((device, on)))
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"device_name": "Test GPU"})
    try:
        assert Accelerator(mixed_precision=True).activate() == "GPU (Test GPU, mixed_float16)"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert grown == [(gpu, True)]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_executor_is_chosen_by_environment(tmp_path: Path) -> None:
    assert build_defs({"AGE_ASSETS_DATA_DIR": str(tmp_path)}).executor.name == "multiprocess"
    assert build_defs({"AGE_ASSETS_DATA_DIR": str(tmp_path), "AGE_ASSETS_EXECUTOR": "k8s"}).executor.name == "k8s"
    with pytest.raises(ValueError, match="AGE_ASSETS_EXECUTOR='ray'"):
        build_defs({"AGE_ASSETS_EXECUTOR": "ray"})


def test_training_steps_request_one_gpu_from_kubernetes(defs: dg.Definitions) -> None:
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    graph = defs.get_repository_def().asset_graph
    for name in ("model_mobilenet_v3_small", "classifier_mobilenet_v3_small", "image_arrays"):
        tags = graph.get(dg.AssetKey(name)).assets_def.op.tags
        job = construct_dagster_k8s_job(
            DagsterK8sJobConfig(job_image="age-assets:latest", dagster_home="/opt/dagster/dagster_home",
                                instance_config_map="dagster-instance"),
            args=["dagster", "api", "execute_step"], job_name=f"step-{name.replace('_', '-')}",
            user_defined_k8s_config=get_user_defined_k8s_config(tags),
        )
        resources = job.spec.template.spec.containers[0].resources
        limits = (resources.limits if resources else None) or {}
        assert limits.get("nvidia.com/gpu") == ("1" if name != "image_arrays" else None), name
