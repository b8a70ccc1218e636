"""Materialize some data assets in a process of its own that pauses on the way: a run that the
fault tests can kill mid-asset, or hold while another run rebuilds what it depends on. It touches
SIGNAL_FILE when it pauses and goes on once RELEASE_FILE exists.

PAUSE is ``writing`` (inside ``image_arrays``, once the first split is written; the selection is
``raw_dataset,image_arrays``) or ``loading`` (as ``augmented_train`` loads ``image_arrays``; the
selection is SELECTION, comma-separated). With DAGSTER_HOME set the run goes into that instance.

Usage: python -m age_assets_tests.materialize_paused DATA_DIR FACES IMAGE_SIZE SIGNAL_FILE RELEASE_FILE
       [PAUSE [SELECTION]]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dagster as dg

import age_assets.assets.dataset as dataset
from age_assets.definitions import build_defs
from age_assets.io_managers import ArtifactIOManager


def main(data_dir: str, faces: str, image_size: str, signal_file: str, release_file: str, pause: str = "writing",
         selection: str = "raw_dataset,image_arrays") -> None:
    def wait() -> None:
        Path(signal_file).touch()
        while not Path(release_file).exists():
            time.sleep(0.1)

    if pause == "writing":
        write_image_stack = dataset.write_image_stack

        def paused_writing(*args: object, **kwargs: object) -> object:
            written = write_image_stack(*args, **kwargs)
            wait()
            return written

        dataset.write_image_stack = paused_writing
    else:
        load_input = ArtifactIOManager.load_input

        def paused_loading(self: ArtifactIOManager, context: dg.InputContext) -> object:
            if context.asset_key == dg.AssetKey("image_arrays") and context.op_def.name == "augmented_train":
                wait()
            return load_input(self, context)

        ArtifactIOManager.load_input = paused_loading  # type: ignore[method-assign]
    defs = build_defs({"AGE_ASSETS_DATA_DIR": data_dir, "AGE_ASSETS_DATASET": f"utkface:{faces}"})
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    ops = {"image_arrays": {"config": {"image_size": int(image_size)}}, "augmented_train": {"config": {"factor": 2}}}
    dg.materialize(list(defs.assets), resources=defs.resources, selection=selection.split(","), instance=instance,
                   run_config={"ops": {name: ops[name] for name in selection.split(",") if name in ops}})


if __name__ == "__main__":
    main(*sys.argv[1:])
