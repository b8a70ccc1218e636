"""Age intervals with a stated coverage: conformal, per predicted-age band, scaled by how unsure the
bucket probabilities are (NumPy only: the serving code applies the same table).

Calibrated on the validation split: for each face the signed error ``(true - predicted) / difficulty``,
where the difficulty is one year plus the spread (standard deviation, in years) of the model's own
bucket probabilities over the buckets' middle ages: a face the classifiers place in several buckets
gets a wider interval than one they agree on. Within each band of predicted age (the seven buckets)
the interval is ``predicted + difficulty * [lower, upper]`` with ``lower`` and ``upper`` the split
conformal quantiles of that band's errors at ``(1 - coverage) / 2`` from each side, so that, for
faces like the validation faces, each tail holds at most half the miss rate. A band with fewer than
``MIN_BAND_FACES`` validation faces takes the quantiles of all faces. A coverage that all the
validation faces together cannot support (90% needs at least 19, 80% at least 9) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket

COVERAGES = (0.8, 0.9)
"""Nominal coverages of the intervals every export carries."""
BUCKET_MIDDLE_AGES = np.array([1.0, 6.0, 15.0, 24.0, 36.5, 55.5, 75.0])
"""A representative age of each bucket (the last one is open above), for the spread of its probabilities."""
MIN_BAND_FACES = 50
"""Fewest validation faces a band calibrates on by itself; a smaller band uses the pooled quantiles."""


def coverage_key(coverage: float) -> str:
    """``0.8`` -> ``"80"``: how a coverage is named in ``export.json`` and the report."""
    return f"{round(coverage * 100):d}"


def difficulty(buckets: np.ndarray) -> np.ndarray:
    """One year plus the spread in years of each row of bucket probabilities [N, 7]: [N]."""
    p = np.asarray(buckets, dtype=np.float64)
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    mean = p @ BUCKET_MIDDLE_AGES
    spread = np.sqrt(np.clip(p @ BUCKET_MIDDLE_AGES**2 - mean**2, 0.0, None))
    return 1.0 + spread


def _conformal_bounds(scores: np.ndarray, coverage: float) -> tuple[float, float]:
    """Lower and upper split-conformal quantiles of signed scores, each tail holding ``(1 - coverage) / 2``."""
    n = len(scores)
    tail = (1.0 - coverage) / 2
    rank = int(np.ceil((n + 1) * (1.0 - tail)))  # the finite-sample correction of split conformal
    if rank > n:
        return float("-inf"), float("inf")
    ordered = np.sort(scores)
    return float(ordered[n - rank]), float(ordered[rank - 1])


@dataclass(frozen=True)
class IntervalTable:
    """Per coverage (``"80"``, ``"90"``) and predicted-age band, the scaled error quantiles [lower, upper]."""

    bounds: Mapping[str, Sequence[Sequence[float]]]
    band_faces: Sequence[int]

    @classmethod
    def calibrate(cls, predicted: np.ndarray, truth: np.ndarray, buckets: np.ndarray,
                  coverages: Sequence[float] = COVERAGES) -> IntervalTable:
        """The table from validation predictions, true ages and bucket probabilities."""
        predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
        if not len(predicted) or len(predicted) != len(truth) or len(truth) != len(buckets):
            raise ValueError(f"calibration needs as many predictions as true ages and bucket rows, got "
                             f"{len(predicted)}, {len(truth)} and {len(buckets)}")
        scores = (truth - predicted) / difficulty(buckets)
        bands = age_to_bucket(predicted)
        faces = [int(np.sum(bands == b)) for b in range(len(BUCKET_LABELS))]
        bounds = {}
        for coverage in coverages:
            pooled = _conformal_bounds(scores, coverage)
            if not np.isfinite(pooled).all():  # too few faces to state this coverage: no interval, not an endless one
                continue
            bounds[coverage_key(coverage)] = [
                list(_conformal_bounds(scores[bands == b], coverage) if faces[b] >= MIN_BAND_FACES else pooled)
                for b in range(len(BUCKET_LABELS))]
        return cls(bounds, faces)

    def __call__(self, predicted: np.ndarray, buckets: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per coverage, the (low, high) ages [N] of each face; never below 0."""
        predicted = np.asarray(predicted, float)
        scale = difficulty(buckets)
        bands = age_to_bucket(predicted)
        out = {}
        for key, table in self.bounds.items():
            bound = np.asarray(table, float)[bands]
            out[key] = (np.maximum(predicted + scale * bound[:, 0], 0.0), predicted + scale * bound[:, 1])
        return out

    def to_json(self) -> dict[str, object]:
        return {"method": "split conformal per predicted-age band, errors scaled by 1 + the spread in years "
                          "of the bucket probabilities",
                "bands": list(BUCKET_LABELS), "band_faces": list(self.band_faces),
                "bucket_middle_ages": BUCKET_MIDDLE_AGES.tolist(), "bounds": dict(self.bounds)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> IntervalTable:
        """The table as ``to_json`` wrote it; ``ValueError`` where it is not one."""
        try:
            bounds = {str(k): [[float(lo), float(hi)] for lo, hi in v]  # type: ignore[misc]
                      for k, v in dict(data["bounds"]).items()}  # type: ignore[call-overload]
            faces = [int(n) for n in data["band_faces"]]  # type: ignore[attr-defined]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an interval table ({error})") from error
        if list(data.get("bands", [])) != list(BUCKET_LABELS) or any(  # type: ignore[call-overload]
                len(v) != len(BUCKET_LABELS) for v in bounds.values()):
            raise ValueError(f"an interval table needs one row per band {list(BUCKET_LABELS)}")
        if not all(np.isfinite(row).all() for v in bounds.values() for row in v):
            raise ValueError("an interval table's bounds must be finite numbers")
        return cls(bounds, faces)


def interval_scores(truth: np.ndarray, intervals: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """Per coverage: the share of true ages inside their interval, the mean width, and both per true-age band.

    The shape of ``report["intervals"]``: ``{"80": {"coverage", "mean_width", "per_band": {band:
    {"coverage", "mean_width", "faces"}}}}``; a band without faces is left out.
    """
    truth = np.asarray(truth, float)
    bands = age_to_bucket(truth)
    scores = {}
    for key, (low, high) in intervals.items():
        inside, width = (truth >= low) & (truth <= high), high - low
        per_band = {label: {"coverage": float(inside[bands == b].mean()), "mean_width": float(width[bands == b].mean()),
                            "faces": int(np.sum(bands == b))}
                    for b, label in enumerate(BUCKET_LABELS) if np.any(bands == b)}
        scores[key] = {"coverage": float(inside.mean()), "mean_width": float(width.mean()), "per_band": per_band}
    return scores


def intervals_markdown(scores: Mapping[str, Mapping]) -> str:
    """``interval_scores`` as a markdown section: coverage and mean width overall and per true-age band."""
    lines = ["", "## Age intervals (coverage of the true age and mean width in years, per true-age band)", "",
             "| nominal | band | faces | coverage | mean width |", "|---|---|---|---|---|"]
    for key, s in scores.items():
        faces = sum(b["faces"] for b in s["per_band"].values())
        lines.append(f"| {key}% | all | {faces} | {s['coverage']:.3f} | {s['mean_width']:.1f} |")
        lines += [f"| {key}% | {band} | {b['faces']} | {b['coverage']:.3f} | {b['mean_width']:.1f} |"
                  for band, b in s["per_band"].items()]
    return "\n".join(lines) + "\n"
