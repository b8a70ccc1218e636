"""Optional MLflow tracking of training steps, and TensorBoard logs beside each trained artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from age_assets_tests.conftest import SHARED_WEIGHTS, Materialize, write_utkface

TRAIN = {"epochs": 3, "patience": 3, "units": 16, "train_last": 0, "train_on": "plain", "learning_rate": 3e-3}


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5").is_file(), reason="needs local weights")
def test_a_training_step_logs_settings_epochs_scores_and_model_to_mlflow(
    materialize: Materialize, tmp_path: Path
) -> None:
    import mlflow

    faces = tmp_path / "faces"
    write_utkface(faces, n=60)
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    (tmp_path / "mlflow").mkdir()
    env = {"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_BACKBONES": "mobilenet_v3_small",
           "AGE_ASSETS_WEIGHTS_DIR": str(SHARED_WEIGHTS), "AGE_ASSETS_MLFLOW_URI": uri}
    result = materialize(env, "raw_dataset,image_arrays,augmented_train,model_mobilenet_v3_small",
                         {"ops": {"image_arrays": {"config": {"image_size": 32}},
                                  "augmented_train": {"config": {"factor": 2}},
                                  "model_mobilenet_v3_small": {"config": TRAIN}}})
    model = result.output_for_node("model_mobilenet_v3_small")

    client = mlflow.tracking.MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("age_assets").experiment_id])
    assert run.info.run_name == "model_mobilenet_v3_small" and run.data.tags["fingerprint"] == model.fingerprint
    assert {k: run.data.params[k] for k in TRAIN} == {k: str(v) for k, v in TRAIN.items()}
    assert {"dropout", "seed", "loss", "output", "backbone"} <= set(run.data.params), "every setting"
    epochs = client.get_metric_history(run.info.run_id, "val_mae")
    assert [m.step for m in epochs] == list(range(1, model.info()["epochs"] + 1))
    assert run.data.metrics["final_val_mae"] == pytest.approx(
        result.asset_materializations_for_node("model_mobilenet_v3_small")[0].metadata["val_mae"].value)
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "model_mobilenet_v3_small")}
    assert "model_mobilenet_v3_small/model.keras" in logged and "model_mobilenet_v3_small/info.json" in logged
    assert (tmp_path / "mlflow" / "mlartifacts").is_dir(), "artifacts sit beside the database"
    events = list((model.folder / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "TensorBoard logs beside the artifact"
