"""Compare ways to decide a face's age bucket from what a built graph predicted, on the validation split only.

Usage: DAGSTER_HOME=<dir> python bench/bucket_decisions.py <data dir> [backbone ...]
Reads the latest materializations of image_arrays, ensemble and every classifier_<backbone> (the
default backbones where none are given) and prints, per decision, its accuracy on the validation
split: rules without a fit on all of it, fitted ones on held-out folds (5, stratified), so the
numbers compare. Then, to size what a target asks of the members: the ensemble's errors shrunk by a
few percent (every age moved that share of the way to the truth), with the MAE and mapped bucket
accuracy each would give. The test split is never read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
from sklearn.model_selection import StratifiedKFold

from age_assets.artifacts import PROBABILITY_COLUMNS, Ensemble, ImageSet, TrainedModel
from age_assets.definitions import DEFAULT_BACKBONES
from age_assets.ml.bucket_stacking import bucket_stacker, stacking_inputs
from age_assets.ml.buckets import BUCKET_UPPER_AGES, age_to_bucket
from age_assets.resources import Storage

Decision = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(train rows, their buckets, held-out rows) -> buckets of the held-out rows."""


def folder(instance: dg.DagsterInstance, storage: Storage, asset: str) -> tuple[Path, str]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        raise SystemExit(f"{asset} is not materialized in {instance.root_directory}")
    fingerprint = str(event.asset_materialization.metadata["fingerprint"].value)
    return storage.artifact(asset, fingerprint), fingerprint


def held_out(decide: Decision, rows: np.ndarray, truth: np.ndarray) -> float:
    predicted = np.empty_like(truth)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(rows, truth):
        predicted[test] = decide(rows[train], truth[train], rows[test])
    return float(np.mean(predicted == truth))


EDGE_STEPS = np.arange(-3, 3.01, 0.25)
"""How far, in years, ``tuned_edges`` tries moving each bucket edge."""


def tuned_edges(ages: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Bucket edges on the predicted age moved one at a time, twice over, to the best accuracy on ``ages``."""
    edges = BUCKET_UPPER_AGES + 0.5
    for _ in range(2):
        for i in range(len(edges)):
            scores = []
            for step in EDGE_STEPS:
                moved = edges.copy()
                moved[i] = BUCKET_UPPER_AGES[i] + 0.5 + step
                scores.append(np.mean(np.searchsorted(np.sort(moved), ages) == truth))
            edges[i] = BUCKET_UPPER_AGES[i] + 0.5 + EDGE_STEPS[int(np.argmax(scores))]
    return np.sort(edges)


SHRINKS = (0.0, 0.025, 0.05, 0.075, 0.1)
"""Shares by which the headroom table shrinks every error of the ensemble."""


def main(data_dir: str, backbones: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    storage = Storage(data_dir=data_dir)
    images = ImageSet(*folder(instance, storage, "image_arrays"))
    real = images.labels("valid")["real_age"].to_numpy(np.float64)
    truth = age_to_bucket(real)
    ages = Ensemble(*folder(instance, storage, "ensemble")).predictions("valid")["age"].to_numpy()
    classifiers = [TrainedModel(*folder(instance, storage, f"classifier_{b}")).predictions("valid") for b in backbones]
    probabilities = [c[PROBABILITY_COLUMNS].to_numpy() for c in classifiers]
    averaged = np.mean(probabilities, axis=0)
    stacked = stacking_inputs(ages, probabilities)
    separate = np.column_stack([ages, *(stacking_inputs(ages, [p])[:, 1:] for p in probabilities)])

    def stacker(c: float) -> Decision:
        def decide(train: np.ndarray, buckets: np.ndarray, rows: np.ndarray) -> np.ndarray:
            model = bucket_stacker()
            model.set_params(logisticregression__C=c)
            return model.fit(train, buckets).predict(rows)
        return decide

    def edges(train: np.ndarray, buckets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(tuned_edges(train[:, 0], buckets), rows[:, 0])

    print(f"validation split: {len(truth)} faces; classifiers of {', '.join(backbones)}")
    print("| decision | accuracy |\n|---|---|")
    print(f"| the ensemble's age, mapped | {np.mean(age_to_bucket(ages) == truth):.3f} |")
    print(f"| the classifiers' averaged probabilities | {np.mean(averaged.argmax(axis=1) == truth):.3f} |")
    for name, rows, decide in [
        ("the ensemble's age, edges tuned (held out)", ages[:, None], edges),
        ("bucket_ensemble's stacker, C=1 (held out)", stacked, stacker(1.0)),
        ("the stacker, C=0.1 (held out)", stacked, stacker(0.1)),
        ("the stacker, C=10 (held out)", stacked, stacker(10.0)),
        ("the stacker on each classifier's probabilities (held out)", separate, stacker(1.0)),
    ]:
        print(f"| {name} | {held_out(decide, rows, truth):.3f} |")
    print("\n| the ensemble's errors | MAE | accuracy, ages mapped |\n|---|---|---|")
    for shrink in SHRINKS:
        shrunk = real + (1 - shrink) * (ages - real)
        print(f"| {shrink:.1%} smaller | {np.mean(np.abs(shrunk - real)):.2f} | "
              f"{np.mean(age_to_bucket(shrunk) == truth):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or DEFAULT_BACKBONES.split(","))
