"""One training step of the ``gpu_graph`` job (its settings, a couple of epochs) on a subset of the
shared UTKFace faces, once per device setting, each in a fresh process. Prints one JSON line per
setting: where TensorFlow trained, seconds of the last epoch, peak GPU memory.

    python bench/gpu_check.py prepare DATA_DIR FACES N        # the subset and the data assets
    python bench/gpu_check.py train DATA_DIR FACES EPOCHS SEED [--mixed-precision]
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import dagster as dg

from age_assets.configurations import CONFIGURATIONS, run_config
from age_assets.definitions import ENV_BACKBONES, ENV_DATA_DIR, ENV_DATASET, ENV_MIXED_PRECISION, build_defs

BACKBONE = "mobilenet_v3_small"
STEP = f"model_{BACKBONE}"
EPOCH_END = re.compile(r"epoch \d+: [a-z_]+=")
"""The line a training step logs at each epoch's end (its progress lines say batches instead)."""


def settings_env(data_dir: str, faces: str, mixed_precision: bool = False) -> dict[str, str]:
    return {**os.environ, ENV_DATA_DIR: data_dir, ENV_DATASET: f"utkface:{faces}", ENV_BACKBONES: BACKBONE,
            ENV_MIXED_PRECISION: "1" if mixed_precision else ""}


def prepare(data_dir: str, faces: str, source: str, n: int) -> None:
    """Link the first ``n`` faces (by name) into ``faces`` and materialize the data assets from them."""
    folder = Path(faces)
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).glob("*.jpg"))[:n]:
        (folder / path.name).unlink(missing_ok=True)
        (folder / path.name).symlink_to(path.resolve())
    defs = build_defs(settings_env(data_dir, faces))
    data = [dg.AssetKey(name) for name in ("raw_dataset", "image_arrays", "augmented_train")]
    defs.resolve_implicit_global_asset_job_def().execute_in_process(asset_selection=data)


def train(data_dir: str, faces: str, epochs: int, seed: int, mixed_precision: bool) -> dict[str, object]:
    """Run the ``gpu_graph`` job's training step alone; the seed makes each setting train anew. Its
    blocking check may fail after so few epochs: the timings stand."""
    import tensorflow as tf

    defs = build_defs(settings_env(data_dir, faces, mixed_precision))
    job = defs.get_job_def("gpu_graph")
    _, settings = CONFIGURATIONS["gpu"]
    config = run_config({**settings, "epochs": epochs, "patience": epochs, "seed": seed}, [BACKBONE])
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(run_config={"ops": {STEP: config["ops"][STEP]}}, instance=instance,
                                    asset_selection=[dg.AssetKey(STEP)], raise_on_error=False)
    (materialization,) = result.asset_materializations_for_node(STEP)
    epoch_times = [entry.timestamp for entry in instance.all_logs(result.run_id)
                   if EPOCH_END.match(entry.user_message)]
    gpus = tf.config.list_physical_devices("GPU")
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpus else 0
    return {"device": materialization.metadata["device"].value, "mixed_precision": mixed_precision,
            "train_images": materialization.metadata["train_images"].value, "epochs": len(epoch_times),
            "last_epoch_s": round(epoch_times[-1] - epoch_times[-2], 1) if len(epoch_times) > 1 else None,
            "peak_gpu_memory_mb": round(peak / 2**20)}


if __name__ == "__main__":
    command, data_dir, faces, *rest = sys.argv[1:]
    if command == "prepare":
        prepare(data_dir, faces, rest[0], int(rest[1]))
    else:
        print(json.dumps(train(data_dir, faces, int(rest[0]), int(rest[1]), "--mixed-precision" in rest)),
              flush=True)
