"""The plain install (`pip install age_assets`, and with `[serve]`) against the full one: installed
size and the cold start of `age-assets predict`, as ratios measured in the same run.

- Size: `du` of each virtualenv's site-packages. The plain ones are built here from the working tree
  into fresh virtualenvs at the pinned versions (uv, as the slim-install test does); the full one is
  the virtualenv running this script (`make setup`'s `.venv`, or --full VENV).
- Cold start: a new process that starts, loads the exported model and the detector's neighbours,
  and predicts one face crop (`age-assets predict --crops`), alternating between the plain and the
  full virtualenv, the same code on both sides; medians of --rounds rounds and peak memory (VmHWM).

The model is --model (an export folder or file), else the current `exported_model` under
--data-dir, else a stand-in built here of the default export's shape (MobileNetV3Small and
EfficientNet-Lite0, a regressor and a classifier each, 224 px) with random weights: loading time
depends on the graph and its size, not on the weights' values.

Usage: python bench/slim_install.py [--model PATH] [--data-dir DIR] [--rounds 3] [--full VENV]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from age_assets.storage import Pointer  # noqa: E402
from age_assets_tests.test_slim_install import _uv, heavy_distributions, install, project_copy  # noqa: E402


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def megabytes(folder: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True, check=True)
               .stdout.split()[0]) / 1024


def stand_in_export(folder: Path) -> Path:
    """An export of the default shape with random weights (see the module's docstring)."""
    import keras

    from age_assets.ml.age_distribution import YEARS
    from age_assets.ml.backbones import get_backbone
    from age_assets.ml.export import Member, export_all, inference_model
    from age_assets.ml.models import build_model
    from age_assets.ml.specs import HeadSpec

    keras.utils.set_random_seed(0)
    members = []
    for backbone in ("mobilenet_v3_small", "efficientnet_lite0"):
        spec = get_backbone(backbone)
        for classes, roles in ((0, {"age_weight": 0.5}), (YEARS, {"age_weight": 0.1, "buckets": True})):
            members.append(Member(model=build_model(spec.name, 224, None, HeadSpec(), 0, classes), scale=spec.scale,
                                  offset=spec.offset, mirror_average=True, **roles))
    export_all(inference_model(224, members), folder, 224)
    return folder


def the_model(args: argparse.Namespace, scratch: Path) -> Path:
    if args.model:
        path = Path(args.model)
        return path / "age_estimator.tflite" if path.is_dir() else path
    pointer = Pointer.read(Path(args.data_dir), "exported_model")
    if pointer is not None:
        return pointer.folder / "age_estimator.tflite"
    print("no exported_model: building a stand-in of the default export's shape with random weights", flush=True)
    return stand_in_export(scratch / "export") / "age_estimator.tflite"


def cold_start(python: Path, model: Path, crop: Path, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one `predict --crops` process, run to completion."""
    command = ["/usr/bin/time", "-f", "%M", str(python), "-m", "age_assets.cli", "predict", "--crops",
               "--model", str(model), str(crop)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{python}: predict failed:\n{result.stderr[-2000:]}")
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="an export folder, or its .tflite file")
    parser.add_argument("--data-dir", default=os.environ.get("AGE_ASSETS_DATA_DIR", "data"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", type=Path, default=Path(sys.prefix), help="the full virtualenv (default: this one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="slim_install_") as tmp:
        scratch = Path(tmp)
        model = the_model(args, scratch)
        source = project_copy(scratch / "source")
        venvs = {"plain": scratch / "plain", "plain[serve]": scratch / "serve"}
        for name, venv in venvs.items():
            subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            install(venv, str(source) + ("[serve]" if "serve" in name else ""))
            if heavy := heavy_distributions(venv):
                raise SystemExit(f"{name} pulled in {heavy}")

        full_mb = megabytes(site_packages(args.full))
        print(f"installed size (du of site-packages): full ({args.full}) {full_mb:,.0f} MB")
        for name, venv in venvs.items():
            mb = megabytes(site_packages(venv))
            print(f"  {name}: {mb:,.0f} MB = {mb / full_mb:.3f}x the full install ({full_mb / mb:.0f}x smaller)")

        from age_assets_tests.conftest import synthetic_face

        crop = scratch / "face.jpg"
        synthetic_face(35, size=224).save(crop, quality=95)
        plain_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        full_env = {**plain_env, "PYTHONPATH": str(ROOT)}  # this checkout's code, as in the plain venv
        sides = {"plain": (venvs["plain"] / "bin" / "python", plain_env),
                 "full": (args.full / "bin" / "python", full_env)}
        runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for python, env in sides.values():  # a first, untimed run each: the file cache warms up alike
            cold_start(python, model, crop, env, scratch)
        for _ in range(args.rounds):
            for side, (python, env) in sides.items():
                runs[side].append(cold_start(python, model, crop, env, scratch))
        seconds = {side: statistics.median(t for t, _ in r) for side, r in runs.items()}
        memory = {side: statistics.median(m for _, m in r) for side, r in runs.items()}
        print(f"cold start, predict one crop with {model.name} ({model.stat().st_size / 1e6:.1f} MB): "
              f"plain {seconds['plain']:.2f} s, {memory['plain']:.0f} MB; full {seconds['full']:.2f} s, "
              f"{memory['full']:.0f} MB; plain / full = {seconds['plain'] / seconds['full']:.2f}x time, "
              f"{memory['plain'] / memory['full']:.2f}x memory [{args.rounds} alternating rounds, medians]")
        for side, times in runs.items():
            print(f"  {side}: " + ", ".join(f"{t:.2f} s" for t, _ in times))


if __name__ == "__main__":
    main()
