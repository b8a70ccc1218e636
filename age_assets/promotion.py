"""Whether a new export may replace the promoted one: both scored on the same reference faces.

The reference faces are the test split as it was when the first model was promoted, copied under
``<root>/promotion/reference/<fingerprint>/`` and named by ``reference.json``. New data changes the
splits, never this copy. Scores are stored per export and reference set, so an unchanged rerun
scores nothing. No Dagster and no TensorFlow here: exports run on LiteRT.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from age_assets.storage import Pointer, atomic_dir, atomic_write_text

PROMOTION = "promotion"
"""Under the storage root: the reference faces, their record and the stored scores."""
PROMOTED = "promoted_model"
"""The asset, and so the pointer, naming the export in use."""
LITERT_FILE = "age_estimator.tflite"


@dataclass(frozen=True)
class ReferenceSet:
    """``images.npy`` (uint8 [N, S, S, 3]) and ``labels.csv`` (N rows) of fixed faces."""

    folder: Path
    fingerprint: str

    def images(self) -> np.ndarray:
        return np.load(self.folder / "images.npy", mmap_mode="r")

    def labels(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "labels.csv")


def _record(root: Path) -> Path:
    return Path(root) / PROMOTION / "reference.json"


def reference_set(root: Path) -> ReferenceSet | None:
    """The reference faces recorded at the first promotion, or None before it."""
    record = _record(root)
    if not record.is_file():
        return None
    fingerprint = json.loads(record.read_text())["fingerprint"]
    folder = Path(root) / PROMOTION / "reference" / fingerprint
    if not (folder / "images.npy").is_file():
        raise FileNotFoundError(f"{record} names reference faces {folder} that are gone; restore them, or delete "
                                f"{record} to start again from the current test split")
    return ReferenceSet(folder, fingerprint)


def keep_reference_set(root: Path, images: np.ndarray, labels: pd.DataFrame) -> ReferenceSet:
    """The recorded reference faces; where there are none yet, a copy of ``images`` and ``labels``
    becomes them, named by a digest of their content."""
    found = reference_set(root)
    if found is not None:
        return found
    if len(images) != len(labels) or not len(images):
        raise ValueError(f"reference faces need as many labels as images, and some: {len(images)} images, "
                         f"{len(labels)} labels")
    csv = labels.to_csv(index=False)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(csv.encode())
    fingerprint = digest.hexdigest()[:16]
    folder = Path(root) / PROMOTION / "reference" / fingerprint
    if not folder.is_dir():
        with atomic_dir(folder) as scratch:
            np.save(scratch / "images.npy", np.ascontiguousarray(images))
            (scratch / "labels.csv").write_text(csv)
    atomic_write_text(_record(root), json.dumps({"fingerprint": fingerprint, "faces": len(images)}))
    return ReferenceSet(folder, fingerprint)


def reference_mae(export_folder: Path, export_fingerprint: str, reference: ReferenceSet) -> float:
    """Mean absolute error in years of the export's LiteRT model on the reference faces, against the
    label the export was trained for; computed once per export and reference set."""
    stored = reference.folder.parent.parent / "scores" / f"{export_fingerprint}-{reference.fingerprint}.json"
    if stored.is_file():
        return float(json.loads(stored.read_text())["mae"])
    from age_assets.serving.runtime import ExportedModel

    model = ExportedModel(Path(export_folder) / LITERT_FILE)
    target = model.description.get("target", "real_age")
    labels = reference.labels()
    if target not in labels:
        raise ValueError(f"{reference.folder / 'labels.csv'} has no column {target!r}, the label "
                         f"{export_folder} was trained for")
    ages, _ = model.predict(reference.images())
    mae = float(np.mean(np.abs(ages - labels[target].to_numpy())))
    atomic_write_text(stored, json.dumps({"mae": mae, "faces": len(ages)}))
    return mae


@dataclass(frozen=True)
class Decision:
    """The challenger's and the promoted model's MAE on the reference faces, and whether the
    challenger replaces it: only if not worse by more than ``tolerance`` years."""

    challenger_mae: float
    promoted_mae: float | None
    tolerance: float
    reference_fingerprint: str

    @property
    def promote(self) -> bool:
        return self.promoted_mae is None or self.challenger_mae <= self.promoted_mae + self.tolerance

    @property
    def worse_by(self) -> float:
        return 0.0 if self.promoted_mae is None else self.challenger_mae - self.promoted_mae

    def message(self) -> str:
        faces = f"on the reference faces {self.reference_fingerprint}"
        if self.promoted_mae is None:
            return f"first promotion: MAE {self.challenger_mae:.2f} years {faces}"
        verdict = "promoted" if self.promote else "refused"
        return (f"{verdict}: the new export's MAE is {self.challenger_mae:.2f} years {faces}, the promoted model's "
                f"{self.promoted_mae:.2f}; worse by {self.worse_by:+.2f} years, the tolerance is "
                f"{self.tolerance:.2f}")

    def metadata(self) -> dict[str, float | str | bool]:
        return {"challenger_reference_mae": round(self.challenger_mae, 3),
                "promoted_reference_mae": -1.0 if self.promoted_mae is None else round(self.promoted_mae, 3),
                "worse_by_years": round(self.worse_by, 3), "tolerance_years": self.tolerance,
                "decision": "promoted" if self.promote else "refused",
                "reference_fingerprint": self.reference_fingerprint}


def decide(root: Path, challenger: Pointer, images: np.ndarray, labels: pd.DataFrame, tolerance: float
           ) -> Decision:
    """Score ``challenger`` and the promoted export (if any) on the reference faces, keeping
    ``images`` and ``labels`` (the current test split) as those faces where none are kept yet."""
    reference = keep_reference_set(root, images, labels)
    promoted = Pointer.read(root, PROMOTED)
    promoted_mae = None
    if promoted is not None and promoted.folder.is_dir():
        promoted_mae = reference_mae(promoted.folder, promoted.fingerprint, reference)
    return Decision(reference_mae(challenger.folder, challenger.fingerprint, reference), promoted_mae,
                    tolerance, reference.fingerprint)
