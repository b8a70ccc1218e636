"""`age-assets predict` on face crops: time and memory, as ratios against baselines from the same run.

1. One crop end to end (a new process: start, load, decode, predict, print) against a process
   that only runs `import tensorflow`. Goal: under 0.3x.
2. A folder of N crops (default 2,000 test-split shared faces) against the Keras ensemble through
   TensorFlow (`bench/keras_ensemble_predict.py`, how `predict` worked before the export). Goal: 3x.
Runs alternate between the two sides; medians are printed. Peak memory is each process's own (VmHWM).

Usage: python bench/predict_speed.py [--data-dir DIR] [--crops 2000] [--rounds 3] [--folder-rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from age_assets.storage import Pointer

ROOT = Path(__file__).resolve().parents[1]
SHARED_UTKFACE = ROOT.parent / "shared" / "data" / "utkface"
PYTHON = sys.executable
AGE_ASSETS = str(Path(PYTHON).with_name("age-assets"))


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of a command run to completion."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, int(result.stderr.strip().splitlines()[-1]) / 1024


def compare(name: str, ours: list[str], baseline: list[str], baseline_name: str, rounds: int) -> None:
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "baseline": []}
    for _ in range(rounds):
        times["ours"].append(timed(ours))
        times["baseline"].append(timed(baseline))
    median = {k: statistics.median(t for t, _ in v) for k, v in times.items()}
    memory = {k: statistics.median(m for _, m in v) for k, v in times.items()}
    print(f"{name}: ours {median['ours']:.2f} s, {memory['ours']:.0f} MB; {baseline_name} {median['baseline']:.2f} s, "
          f"{memory['baseline']:.0f} MB; ours / baseline = {median['ours'] / median['baseline']:.2f}x time "
          f"({median['baseline'] / median['ours']:.1f}x faster), {memory['ours'] / memory['baseline']:.2f}x memory "
          f"[{rounds} alternating rounds, medians]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the one-crop comparison")
    parser.add_argument("--folder-rounds", type=int, default=2, help="rounds of the folder comparison")
    args = parser.parse_args()

    from predict_on_scenes import test_faces  # beside this script

    data = str(Path(args.data_dir).resolve())
    ensemble = Pointer.read(Path(data), "ensemble")
    faces = test_faces(SHARED_UTKFACE, args.crops, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for face in faces:
            shutil.copy(face, folder / face.name)
        one = str(folder / faces[0].name)
        compare("one crop, new process", [AGE_ASSETS, "predict", one, "--crops", "--data-dir", data],
                [PYTHON, "-c", "import tensorflow"], "import tensorflow", args.rounds)
        compare(f"{len(faces)} crops", [AGE_ASSETS, "predict", str(folder), "--crops", "--data-dir", data],
                [PYTHON, str(ROOT / "bench" / "keras_ensemble_predict.py"), str(ensemble.folder),
                 *sorted(str(p) for p in folder.iterdir())], "Keras ensemble", args.folder_rounds)


if __name__ == "__main__":
    main()
