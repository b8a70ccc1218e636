"""The code location's executor runs each step in a process forked from one that imported Dagster and
the code location once, instead of a new interpreter per step; a step that trains imports TensorFlow
after the fork and trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType

from age_assets_tests.conftest import SHARED_WEIGHTS, write_utkface

pytestmark = pytest.mark.shared
SITECUSTOMIZE = """import os
with open({log!r}, "a") as log:
    log.write(f"{{os.getpid()}}\\n")
"""
MODEL = "model_mobilenet_v3_small"
CONFIG = {"ops": {"image_arrays": {"config": {"image_size": 32}}, "augmented_train": {"config": {"factor": 2}},
                  MODEL: {"config": {"train_last": 0, "units": 8, "epochs": 1, "patience": 1,
                                     "train_on": "plain"}}}}


def test_a_cli_run_forks_its_steps_and_trains_in_them(tmp_path: Path) -> None:
    """Every interpreter that starts appends its pid to a file (``sitecustomize``); no step's process
    may be among them, and the model is trained."""
    faces, home, started, hook = tmp_path / "faces", tmp_path / "home", tmp_path / "interpreters.txt", tmp_path / "hook"
    write_utkface(faces, n=40)
    home.mkdir()
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE.format(log=str(started)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGE_ASSETS_", "DAGSTER_"))}
    env |= {"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_DATA_DIR": str(tmp_path / "data"),
            "AGE_ASSETS_BACKBONES": "mobilenet_v3_small", "AGE_ASSETS_WEIGHTS_DIR": str(SHARED_WEIGHTS),
            "DAGSTER_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(hook), *sys.path])}
    # The model's baseline check may fail on 40 generated faces: what counts is that the model trained.
    subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "age_assets",
         "--select", f"raw_dataset,image_arrays,augmented_train,{MODEL}", "--config-json", json.dumps(CONFIG)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
        run_id = record.dagster_run.run_id
        steps = instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTED)
        succeeded = {e.step_key for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)}
        failures = [e.message for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]
    assert MODEL in succeeded, failures
    step_pids = {int(e.dagster_event.event_specific_data.metadata["pid"].value) for e in steps}  # type: ignore[union-attr]
    interpreters = {int(line) for line in started.read_text().split()}
    assert len(step_pids) >= 4
    assert len(interpreters) >= 2, "the hook saw neither the CLI nor the fork server start"
    assert not step_pids & interpreters, "a step started an interpreter of its own"
