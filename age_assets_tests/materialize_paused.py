"""Materialize ``raw_dataset,image_arrays`` in a process of its own that pauses inside
``image_arrays`` once the first split is written: a run that the fault tests can kill mid-asset.
It touches SIGNAL_FILE when it pauses and goes on once RELEASE_FILE exists.

Usage: python -m age_assets_tests.materialize_paused DATA_DIR FACES IMAGE_SIZE SIGNAL_FILE RELEASE_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg

import age_assets.assets.dataset as dataset
from age_assets.definitions import build_defs


def main(data_dir: str, faces: str, image_size: str, signal_file: str, release_file: str) -> None:
    write_image_stack = dataset.write_image_stack

    def paused(*args: object, **kwargs: object) -> object:
        written = write_image_stack(*args, **kwargs)
        Path(signal_file).touch()
        while not Path(release_file).exists():
            time.sleep(0.1)
        return written

    dataset.write_image_stack = paused
    defs = build_defs({"AGE_ASSETS_DATA_DIR": data_dir, "AGE_ASSETS_DATASET": f"utkface:{faces}"})
    dg.materialize(list(defs.assets), resources=defs.resources, selection=["raw_dataset", "image_arrays"],
                   run_config={"ops": {"image_arrays": {"config": {"image_size": int(image_size)}}}})


if __name__ == "__main__":
    main(*sys.argv[1:])
