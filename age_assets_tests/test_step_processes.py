"""The code location's executor runs each step in a process forked from one that imported Dagster and
the code location once, instead of a new interpreter per step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

from age_assets_tests.conftest import write_utkface

SITECUSTOMIZE = """import os
with open({log!r}, "a") as log:
    log.write(f"{{os.getpid()}}\\n")
"""


def test_a_cli_run_forks_its_steps_instead_of_starting_interpreters(tmp_path: Path) -> None:
    """Every interpreter that starts appends its pid to a file (``sitecustomize``); no step's process
    may be among them, and the run succeeds."""
    faces, home, started = tmp_path / "faces", tmp_path / "home", tmp_path / "interpreters.txt"
    write_utkface(faces, n=30)
    home.mkdir()
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE.format(log=str(started)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGE_ASSETS_", "DAGSTER_"))}
    env |= {"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(hook), *sys.path])}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "age_assets",
         "--select", "raw_dataset,image_arrays", "--config-json",
         '{"ops": {"image_arrays": {"config": {"image_size": 24}}}}'],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        steps = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.STEP_WORKER_STARTED)
    step_pids = {int(e.dagster_event.event_specific_data.metadata["pid"].value) for e in steps}  # type: ignore[union-attr]
    interpreters = {int(line) for line in started.read_text().split()}
    assert len(step_pids) >= 2
    assert len(interpreters) >= 2, "the hook saw neither the CLI nor the fork server start"
    assert not step_pids & interpreters, "a step started an interpreter of its own"
