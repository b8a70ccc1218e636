"""Age intervals with a stated coverage, for every true age alike: a confidence belt over true age,
inverted (NumPy only: the serving code applies the same table).

Calibrated on the validation split. For each true age ``y`` of ``TRUE_AGES`` (0-100), the
``NEIGHBOURS`` validation faces nearest in true age give the range ``[lowest(y), highest(y)]`` of
predicted ages that holds that coverage of faces of about that age: the split-conformal quantiles of
their errors ``predicted - true`` at ``(1 - coverage) / 2`` from each side, added to ``y``. Both ends
are made nondecreasing in ``y`` (an older face is not predicted younger). A predicted age ``p`` then
gets every true age whose range holds it, ``{y : lowest(y) <= p <= highest(y)}`` (Neyman's
construction). Where the model pulls ages towards the middle, that interval may lie wholly on one side
of ``p`` (on UTKFace, a face predicted 20 gets 12-19.5 at 80%: most faces predicted 20 are teenagers):
it says where the true age is, and widening it to hold ``p`` would cover such faces more often than
stated.

Why not conformal by predicted age: that covers each band of *predicted* age, but the model pulls
ages towards the middle (teens predicted as adults), so the faces of a *true*-age band end up in
another band's tail and are missed. The belt covers each true age by construction, whatever the
model's bias and however many faces of each age the photos hold; the price is wider intervals where
the model tells neighbouring ages apart badly. A coverage the neighbourhood cannot support (90%
needs at least 19 faces, 80% at least 9) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket

COVERAGES = (0.8, 0.9)
"""Nominal coverages of the intervals every export carries."""
TRUE_AGES = np.arange(101, dtype=np.float64)
"""The true ages the belt is calibrated at: every whole year the model outputs (0 to
``ml.models.MAX_OUTPUT_AGE``, which the serving code cannot import: that module needs Keras)."""
NEIGHBOURS = 60
"""Validation faces nearest in true age that set each true age's range of predictions (all of them
where there are fewer): chosen by cross-validation within the validation split, against 40, 100 and
150 (`bench/interval_methods.py`)."""
METHOD = "confidence belt over true age (Neyman), inverted"


def coverage_key(coverage: float) -> str:
    """``0.8`` -> ``"80"``: how a coverage is named in ``export.json`` and the report."""
    return f"{round(coverage * 100):d}"


def _conformal_bounds(scores: np.ndarray, coverage: float) -> tuple[float, float]:
    """Lower and upper split-conformal quantiles of signed scores, each tail holding ``(1 - coverage) / 2``."""
    n = len(scores)
    tail = (1.0 - coverage) / 2
    rank = int(np.ceil((n + 1) * (1.0 - tail)))  # the finite-sample correction of split conformal
    if rank > n:
        return float("-inf"), float("inf")
    ordered = np.sort(scores)
    return float(ordered[n - rank]), float(ordered[rank - 1])


def _strictly_increasing(values: np.ndarray) -> np.ndarray:
    """A nondecreasing curve nudged up by a millionth of a year per step, so that it can be inverted."""
    return values + 1e-6 * np.arange(len(values))


@dataclass(frozen=True)
class IntervalTable:
    """Per coverage (``"80"``, ``"90"``), the lowest and highest predicted age [len(TRUE_AGES)] of faces of
    each true age, at that coverage."""

    belts: Mapping[str, tuple[Sequence[float], Sequence[float]]]
    faces: int

    @classmethod
    def calibrate(cls, predicted: np.ndarray, truth: np.ndarray, coverages: Sequence[float] = COVERAGES,
                  neighbours: int = NEIGHBOURS) -> IntervalTable:
        """The table from validation predictions and true ages."""
        predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
        if not len(predicted) or len(predicted) != len(truth):
            raise ValueError(f"calibration needs as many predictions as true ages, got {len(predicted)} and "
                             f"{len(truth)}")
        errors = predicted - truth
        nearest = [np.argsort(np.abs(truth - age), kind="stable")[:neighbours] for age in TRUE_AGES]
        belts = {}
        for coverage in coverages:
            ranges = np.array([_conformal_bounds(errors[faces], coverage) for faces in nearest])
            if not np.isfinite(ranges).all():  # too few faces to state this coverage: no interval, not an endless one
                continue
            lowest, highest = (np.maximum.accumulate(TRUE_AGES + ranges[:, side]) for side in (0, 1))
            belts[coverage_key(coverage)] = (lowest.tolist(), highest.tolist())
        return cls(belts, len(truth))

    @property
    def coverages(self) -> list[str]:
        return list(self.belts)

    def __call__(self, predicted: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per coverage, the (low, high) ages [N] of each face, within ``TRUE_AGES``."""
        predicted = np.asarray(predicted, float)
        out = {}
        for key, (lowest, highest) in self.belts.items():
            # the youngest true age whose highest prediction reaches p, the oldest whose lowest does not pass it
            low = np.interp(predicted, _strictly_increasing(np.asarray(highest)), TRUE_AGES, left=0.0,
                            right=TRUE_AGES[-1])
            high = np.interp(predicted, _strictly_increasing(np.asarray(lowest)), TRUE_AGES, left=0.0,
                             right=TRUE_AGES[-1])
            out[key] = (low, high)
        return out

    def to_json(self) -> dict[str, object]:
        return {"method": METHOD, "true_ages": TRUE_AGES.tolist(), "faces": self.faces,
                "belts": {key: {"lowest_prediction": list(lowest), "highest_prediction": list(highest)}
                          for key, (lowest, highest) in self.belts.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> IntervalTable:
        """The table as ``to_json`` wrote it; ``ValueError`` where it is not one."""
        if isinstance(data, Mapping) and data.get("method") != METHOD:
            raise ValueError(f"not an interval table of this version (method {data.get('method')!r}, "
                             f"expected {METHOD!r})")
        try:
            belts = {str(key): (np.asarray(belt["lowest_prediction"], float),
                                np.asarray(belt["highest_prediction"], float))
                     for key, belt in dict(data["belts"]).items()}  # type: ignore[call-overload]
            faces = int(data["faces"])  # type: ignore[call-overload]
            true_ages = np.asarray(data["true_ages"], float)  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an interval table ({error})") from error
        if true_ages.shape != TRUE_AGES.shape or not np.array_equal(true_ages, TRUE_AGES):
            raise ValueError(f"an interval table is calibrated at the true ages 0-{int(TRUE_AGES[-1])}")
        for key, curves in belts.items():
            if any(c.shape != TRUE_AGES.shape for c in curves):
                raise ValueError(f"an interval table needs one lowest and highest prediction per true age ({key}%)")
            if not all(np.isfinite(c).all() and np.all(np.diff(c) >= 0) for c in curves):
                raise ValueError(f"an interval table's predictions must be finite and nondecreasing ({key}%)")
        return cls({key: (lowest.tolist(), highest.tolist()) for key, (lowest, highest) in belts.items()}, faces)


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
