"""Interval methods compared by cross-validation within the validation split (the test split unread):
overall coverage, the worst gap to nominal over the true-age bands with 50 or more faces, and the
mean width, at 80% and 90%.

Usage: python bench/interval_methods.py --data-dir DIR [--folds 5] [--repeats 4]
Each repeat splits the export's validation faces (``valid_predictions.csv``: the ages and bucket
probabilities the exported model computes) into folds; each method is calibrated on all folds but
one and scored on that one; the held-out faces of every fold and repeat are pooled. The members'
stored validation ages (``model_*``, ``classifier_*``) give their disagreement. The belt with 60
neighbours is ``age_assets.ml.intervals``' method; the others are the ones it was chosen against.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from age_assets.artifacts import PROBABILITY_COLUMNS, Ensemble, Export, ImageSet, TrainedModel
from age_assets.ml.buckets import BUCKET_LABELS, BUCKET_UPPER_AGES, age_to_bucket
from age_assets.ml.intervals import IntervalTable

Faces = dict[str, np.ndarray]  # "age" [N], "truth" [N], "buckets" [N, 7], "members" [N, M]
Interval = tuple[np.ndarray, np.ndarray]
Method = Callable[[Faces, float], Callable[[Faces], Interval]]
"""calibrate(validation faces, coverage) -> interval(faces)."""

BUCKET_EDGES = np.concatenate([[0.0], BUCKET_UPPER_AGES + 0.5, [100.0]])
BUCKET_MIDDLE_AGES = (BUCKET_EDGES[:-1] + BUCKET_EDGES[1:]) / 2


def _quantile(values: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ceil((n + 1) level)-th smallest (the largest where that is past n)."""
    ordered = np.sort(values)
    return float(ordered[min(int(np.ceil((len(values) + 1) * level)), len(values)) - 1])


def _tails(errors: np.ndarray, coverage: float) -> tuple[float, float]:
    tail = (1 - coverage) / 2
    return -_quantile(-errors, 1 - tail), _quantile(errors, 1 - tail)


def constant(faces: Faces, coverage: float) -> Callable[[Faces], Interval]:
    q = _quantile(np.abs(faces["truth"] - faces["age"]), coverage)
    return lambda f: (np.maximum(f["age"] - q, 0), f["age"] + q)


def bucket_spread(faces: Faces) -> np.ndarray:
    p = faces["buckets"] / faces["buckets"].sum(axis=1, keepdims=True)
    mean = p @ BUCKET_MIDDLE_AGES
    return 1 + np.sqrt(np.clip(p @ BUCKET_MIDDLE_AGES**2 - mean**2, 0, None))


def member_spread(faces: Faces) -> np.ndarray:
    return 1 + faces["members"].std(axis=1)


def no_scale(faces: Faces) -> np.ndarray:
    return np.ones(len(faces["age"]))


def predicted_bins(width: float, fewest: int, ages: np.ndarray) -> np.ndarray:
    """Edges of bins of predicted age ``width`` years wide, each merged with its smaller neighbour
    until it holds ``fewest`` faces."""
    edges = [-np.inf, *np.arange(width, 100, width), np.inf]
    while len(edges) > 2:
        counts = np.histogram(ages, edges)[0]
        if counts.min() >= fewest:
            break
        i = int(np.argmin(counts))
        left = i > 0 and (i == len(counts) - 1 or counts[i - 1] < counts[i + 1])
        del edges[i if left else i + 1]
    return np.array(edges)


def binned(bins: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
           scale: Callable[[Faces], np.ndarray]) -> Method:
    """Signed split-conformal quantiles of scaled errors per bin of predicted age."""
    def calibrate(faces: Faces, coverage: float) -> Callable[[Faces], Interval]:
        bin_of = bins(faces["age"])
        scores, which = (faces["truth"] - faces["age"]) / scale(faces), bin_of(faces["age"])
        pooled = _tails(scores, coverage)
        table = np.array([_tails(scores[which == b], coverage) if np.sum(which == b) >= 50 else pooled
                          for b in range(which.max() + 1)])

        def interval(f: Faces) -> Interval:
            bounds, s = table[np.minimum(bin_of(f["age"]), len(table) - 1)], scale(f)
            return np.maximum(f["age"] + s * bounds[:, 0], 0), f["age"] + s * bounds[:, 1]
        return interval
    return calibrate


def buckets_of_predicted_age(_: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return age_to_bucket


def years_of_predicted_age(width: float, fewest: int) -> Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    def bins(ages: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        edges = predicted_bins(width, fewest, ages)
        return lambda a: np.searchsorted(edges, a, side="right") - 1
    return bins


def kernel(bandwidth: float) -> Method:
    """Quantiles of the errors weighted by a Gaussian in predicted age, on a grid of years, interpolated."""
    grid = np.arange(101.0)

    def calibrate(faces: Faces, coverage: float) -> Callable[[Faces], Interval]:
        tail = (1 - coverage) / 2
        errors = faces["truth"] - faces["age"]
        order = np.argsort(errors)
        low, high = [], []
        for age in grid:
            w = np.exp(-0.5 * ((faces["age"][order] - age) / bandwidth) ** 2)
            n = w.sum() ** 2 / (w**2).sum()
            cumulative = np.cumsum(w) / w.sum()
            low.append(errors[order][min(np.searchsorted(cumulative, max(tail - (1 - tail) / n, 0)), len(w) - 1)])
            high.append(errors[order][min(np.searchsorted(cumulative, min((1 - tail) * (1 + 1 / n), 1)), len(w) - 1)])
        return lambda f: (np.maximum(f["age"] + np.interp(f["age"], grid, low), 0),
                          f["age"] + np.interp(f["age"], grid, high))
    return calibrate


def bucket_quantiles(faces: Faces, level: float) -> np.ndarray:
    """Each face's ``level`` quantile of its bucket probabilities, spread evenly over each bucket's ages."""
    p = faces["buckets"] / faces["buckets"].sum(axis=1, keepdims=True)
    cumulative = np.concatenate([np.zeros((len(p), 1)), np.cumsum(p, axis=1)], axis=1)
    return np.array([np.interp(level, c, BUCKET_EDGES) for c in cumulative])


def conformalized_bucket_quantiles(faces: Faces, coverage: float) -> Callable[[Faces], Interval]:
    """CQR: the bucket probabilities' own quantiles as the base interval, each end moved by the split-
    conformal quantile of its misses, per predicted-age band."""
    tail = (1 - coverage) / 2

    def base(f: Faces) -> Interval:
        return (np.minimum(bucket_quantiles(f, tail), f["age"]), np.maximum(bucket_quantiles(f, 1 - tail), f["age"]))
    low, high = base(faces)
    bands = age_to_bucket(faces["age"])

    def moves(m: np.ndarray) -> tuple[float, float]:
        return _quantile(low[m] - faces["truth"][m], 1 - tail), _quantile(faces["truth"][m] - high[m], 1 - tail)
    pooled = moves(np.ones(len(bands), bool))
    table = np.array([moves(bands == b) if np.sum(bands == b) >= 50 else pooled for b in range(len(BUCKET_LABELS))])

    def interval(f: Faces) -> Interval:
        lo, hi = base(f)
        shift = table[age_to_bucket(f["age"])]
        return np.maximum(lo - shift[:, 0], 0), hi + shift[:, 1]
    return interval


def belt(neighbours: int) -> Method:
    def calibrate(faces: Faces, coverage: float) -> Callable[[Faces], Interval]:
        table = IntervalTable.calibrate(faces["age"], faces["truth"], [coverage], neighbours=neighbours)
        key = table.coverages[0]
        return lambda f: table(f["age"])[key]
    return calibrate


METHODS: dict[str, Method] = {
    "constant": constant,
    "7 predicted-age bands, scaled by 1 + bucket spread (the former method)":
        binned(buckets_of_predicted_age, bucket_spread),
    "7 predicted-age bands, unscaled": binned(buckets_of_predicted_age, no_scale),
    "5-year predicted-age bins (>= 60 faces)": binned(years_of_predicted_age(5, 60), no_scale),
    "5-year bins, scaled by 1 + bucket spread": binned(years_of_predicted_age(5, 60), bucket_spread),
    "5-year bins, scaled by 1 + member disagreement": binned(years_of_predicted_age(5, 60), member_spread),
    "3-year bins (>= 40 faces)": binned(years_of_predicted_age(3, 40), no_scale),
    "kernel in predicted age (4 years)": kernel(4.0),
    "CQR on the bucket probabilities' quantiles, 7 bands": conformalized_bucket_quantiles,
    "belt over true age, 40 neighbours": belt(40),
    "belt over true age, 60 neighbours (the code's)": belt(60),
    "belt over true age, 100 neighbours": belt(100),
    "belt over true age, 150 neighbours": belt(150),
}


def cross_validated(method: Method, faces: Faces, coverage: float, folds: int, repeats: int) -> dict:
    inside, width, truth = [], [], []
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(len(faces["age"]))
        for fold in range(folds):
            held = order[fold::folds]
            rest = np.setdiff1d(order, held)
            low, high = method({k: v[rest] for k, v in faces.items()}, coverage)({k: v[held] for k, v in faces.items()})
            y = faces["truth"][held]
            inside.append((y >= low) & (y <= high))
            width.append(high - low)
            truth.append(y)
    hit, wide, bands = np.concatenate(inside), np.concatenate(width), age_to_bucket(np.concatenate(truth))
    per_band = {label: float(hit[bands == b].mean()) for b, label in enumerate(BUCKET_LABELS)
                if np.sum(bands == b) >= 50 * repeats}
    worst = max((c - coverage for c in per_band.values()), key=abs)
    return {"coverage": float(hit.mean()), "worst": worst, "width": float(wide.mean()), "per_band": per_band}


def _artifact(data_dir: Path, name: str, kind: type) -> object:
    pointer = json.loads((data_dir / "pointers" / f"{name}.json").read_text())
    return kind(data_dir / pointer["folder"], pointer["fingerprint"])


def validation_faces(data_dir: Path) -> Faces:
    export: Export = _artifact(data_dir, "exported_model", Export)  # type: ignore[assignment]
    images: ImageSet = _artifact(data_dir, "image_arrays", ImageSet)  # type: ignore[assignment]
    ensemble: Ensemble = _artifact(data_dir, "ensemble", Ensemble)  # type: ignore[assignment]
    reference = export.reference()
    members = [_artifact(data_dir, m["name"], TrainedModel) for m in ensemble.info()["members"]]
    return {"age": reference["age"].to_numpy(float), "buckets": reference[PROBABILITY_COLUMNS].to_numpy(float),
            "truth": images.labels("valid")[ensemble.info()["target"]].to_numpy(float),
            "members": np.stack([m.predictions("valid")["age"].to_numpy(float) for m in members], axis=1)}  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    faces = validation_faces(args.data_dir)
    print(f"{len(faces['age'])} validation faces, {args.repeats} x {args.folds}-fold\n")
    print("| method | 80%: coverage | worst band gap | mean width | 90%: coverage | worst band gap | mean width |")
    print("|---|---|---|---|---|---|---|")
    bands = {}
    for name, method in METHODS.items():
        scores = [cross_validated(method, faces, c, args.folds, args.repeats) for c in (0.8, 0.9)]
        bands[name] = scores
        print(f"| {name} | " + " | ".join(f"{s['coverage']:.3f} | {s['worst']:+.3f} | {s['width']:.1f}"
                                         for s in scores) + " |", flush=True)
    print("\nper true-age band (80% / 90%):")
    for name, scores in bands.items():
        print(f"{name}: " + "  ".join(f"{b} {scores[0]['per_band'][b]:.3f}/{scores[1]['per_band'][b]:.3f}"
                                      for b in scores[0]["per_band"]))


if __name__ == "__main__":
    main()
