"""What each backbone adds to the ensembles, against what it costs, on the validation split only.

Usage: DAGSTER_HOME=<dir> python bench/member_subsets.py <data dir> [backbone ...]
Reads a built graph's stored validation predictions (the default backbones where none are given) and,
for every backbone set that leaves one out, refits the age ensemble's weights and bucket_ensemble's
stacker on held-out folds (5; the same folds for every set) and prints their validation MAE and
bucket accuracy beside the minutes the left-out backbone's two trainings took (their
``build_seconds``). The test split is never read.
"""

from __future__ import annotations

import sys

import dagster as dg
import numpy as np
from bucket_decisions import folder  # bench/ is the script's folder
from sklearn.model_selection import StratifiedKFold

from age_assets.artifacts import PROBABILITY_COLUMNS, ImageSet, TrainedModel
from age_assets.definitions import DEFAULT_BACKBONES
from age_assets.ml.bucket_stacking import bucket_stacker, stacking_inputs
from age_assets.ml.buckets import age_to_bucket
from age_assets.ml.ensemble import combine, fit_weights
from age_assets.resources import Storage


def build_minutes(instance: dg.DagsterInstance, asset: str) -> float:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    return float(event.asset_materialization.metadata["build_seconds"].value) / 60  # type: ignore[arg-type]


def held_out_scores(ages: np.ndarray, probabilities: list[np.ndarray], real: np.ndarray) -> tuple[float, float]:
    """Validation MAE of the age ensemble, its weights fitted on 4 folds and scored on the fifth; and
    accuracy of the stacker on those held-out ensemble ages, fitted and scored on the same folds."""
    truth = age_to_bucket(real)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(ages, truth))
    combined, buckets = np.empty_like(real), np.empty_like(truth)
    for train, test in folds:
        combined[test] = combine(ages[test], fit_weights(ages[train], real[train]))
    inputs = stacking_inputs(combined, probabilities)
    for train, test in folds:
        buckets[test] = bucket_stacker().fit(inputs[train], truth[train]).predict(inputs[test])
    return float(np.mean(np.abs(combined - real))), float(np.mean(buckets == truth))


def main(data_dir: str, backbones: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    storage = Storage(data_dir=data_dir)
    real = ImageSet(*folder(instance, storage, "image_arrays")).labels("valid")["real_age"].to_numpy(np.float64)
    trained = {b: [TrainedModel(*folder(instance, storage, f"{kind}_{b}")).predictions("valid")
                   for kind in ("model", "classifier")] for b in backbones}
    print(f"validation split: {len(real)} faces, 5 folds\n")
    print("| backbones | members | ensemble MAE (held out) | bucket_ensemble accuracy (held out) | "
          "minutes of the left-out backbone's trainings |\n|---|---|---|---|---|")
    for left_out in [None, *backbones]:
        kept = [b for b in backbones if b != left_out]
        ages = np.column_stack([p["age"].to_numpy() for b in kept for p in trained[b]])
        probabilities = [trained[b][1][PROBABILITY_COLUMNS].to_numpy() for b in kept]
        mae, accuracy = held_out_scores(ages, probabilities, real)
        minutes = "" if left_out is None else \
            f"{sum(build_minutes(instance, f'{kind}_{left_out}') for kind in ('model', 'classifier')):.1f}"
        print(f"| {', '.join(kept)} | {ages.shape[1]} | {mae:.3f} | {accuracy:.3f} | {minutes} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or DEFAULT_BACKBONES.split(","))
