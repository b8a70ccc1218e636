"""Coverage and width of the exported model's age intervals: on the test split (against one constant
split-conformal interval calibrated on the same validation faces, the baseline), and on FG-NET's whole
photos through ``age-assets predict`` (another population: no target, the coverage as it comes).

Usage: python bench/interval_coverage.py --data-dir DIR [--fgnet ../shared/data/fgnet/images | --no-fgnet]
                                         [--model EXPORT]
The test split's numbers apply the table this code calibrates on the export's stored validation
predictions (``valid_predictions.csv``: what ``exported_model`` calibrates on, so an export built
before this table format is measured as a rebuild would be) to the stored test predictions of
``ensemble`` (what the export computes, to its agreement check). FG-NET's true age is in each file name
(``PPPAaa``: person PPP at age aa); each photo's first face (the detector's surest) counts.
Targets on the test split: coverage within 2 points of nominal overall and within 5 points in every
true-age band with 50 or more faces.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np

from age_assets.artifacts import Ensemble, Export, ImageSet, TrainedModel
from age_assets.ml.intervals import COVERAGES, IntervalTable, coverage_key, interval_scores

Artifact = TypeVar("Artifact", Ensemble, Export, ImageSet, TrainedModel)
FGNET_AGE = re.compile(r"^\d{3}A(\d{2})", re.IGNORECASE)


def _show(name: str, scores: dict, baseline: dict | None = None) -> None:
    for key, s in scores.items():
        ratio = f", width {s['mean_width'] / baseline[key]['mean_width']:.2f}x the constant interval's" \
            if baseline else ""
        bands = "  ".join(f"{band} {b['coverage']:.3f}/{b['mean_width']:.1f} (n={b['faces']})"
                          for band, b in s["per_band"].items())
        print(f"{name} {key}%: coverage {s['coverage']:.3f}, mean width {s['mean_width']:.2f} years{ratio}")
        print(f"    per true-age band (coverage/width): {bands}")


def constant_interval(valid_errors: np.ndarray, ages: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The floor: one split-conformal quantile of |error| for every face."""
    out = {}
    for coverage in COVERAGES:
        n = len(valid_errors)
        q = np.sort(np.abs(valid_errors))[min(int(np.ceil((n + 1) * coverage)), n) - 1]
        out[coverage_key(coverage)] = (np.maximum(ages - q, 0), ages + q)
    return out


def test_split(data_dir: Path) -> None:
    export = _artifact(data_dir, "exported_model", Export)
    images = _artifact(data_dir, "image_arrays", ImageSet)
    ensemble = _artifact(data_dir, "ensemble", Ensemble)
    truth = images.labels("test")["real_age"].to_numpy(float)
    ages = ensemble.predictions("test")["age"].to_numpy()
    valid_ages = export.reference()["age"].to_numpy()
    valid_truth = images.labels("valid")[ensemble.info()["target"]].to_numpy(float)
    table = IntervalTable.calibrate(valid_ages, valid_truth)
    baseline = interval_scores(truth, constant_interval(valid_truth - valid_ages, ages))
    _show("test split, constant (baseline)", baseline)
    _show("test split, belt over true age", interval_scores(truth, table(ages)), baseline)


def _artifact(data_dir: Path, name: str, kind: type[Artifact]) -> Artifact:
    pointer = json.loads((data_dir / "pointers" / f"{name}.json").read_text())
    return kind(data_dir / pointer["folder"], pointer["fingerprint"])


def fgnet(data_dir: Path, folder: Path, model: Path | None) -> None:
    source = ["--model", str(model)] if model else ["--data-dir", str(data_dir)]
    run = subprocess.run([sys.executable, "-m", "age_assets.cli", "predict", *source, str(folder)],
                         capture_output=True, text=True)
    rows = [r for r in csv.DictReader(io.StringIO(run.stdout)) if r["face"] == "0"]
    keys = sorted({c.removeprefix("age_low_") for c in rows[0] if c.startswith("age_low_")}) if rows else []
    truth = np.array([float(FGNET_AGE.match(Path(r["path"]).name).group(1)) for r in rows])  # type: ignore[union-attr]
    intervals = {k: (np.array([float(r[f"age_low_{k}"]) for r in rows]),
                     np.array([float(r[f"age_high_{k}"]) for r in rows])) for k in keys}
    photos = len([p for p in folder.iterdir() if p.is_file()])
    print(f"FG-NET through predict: {len(rows)} of {photos} photos gave a face (exit {run.returncode}); "
          f"MAE {np.mean(np.abs(np.array([float(r['age']) for r in rows]) - truth)):.2f}")
    _show("FG-NET", interval_scores(truth, intervals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--fgnet", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
                        / "fgnet" / "images")
    parser.add_argument("--no-fgnet", action="store_true", help="the test split only")
    parser.add_argument("--model", type=Path, help="the export predict runs on FG-NET (default: the data dir's)")
    args = parser.parse_args()
    test_split(args.data_dir)
    if not args.no_fgnet:
        fgnet(args.data_dir, args.fgnet, args.model)


if __name__ == "__main__":
    main()
