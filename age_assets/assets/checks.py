"""Blocking asset checks: a failed one stops everything downstream of the asset it checks."""

from __future__ import annotations

import dagster as dg
import numpy as np

from age_assets.artifacts import ImageSet, TrainedModel
from age_assets.datasets.manifest import MAX_LABEL_AGE, SPLITS
from age_assets.ml.buckets import age_to_bucket
from age_assets.ml.metrics import mae

MARGIN = 0.1
"""A model must beat its trivial baseline by this share: MAE at most 90% of the mean predictor's,
accuracy at least 10% above the most common bucket's."""


def image_arrays_problems(images: ImageSet) -> list[str]:
    """Everything wrong with an ``image_arrays`` artifact; empty when it is sound."""
    problems: list[str] = []
    paths: dict[str, set[str]] = {}
    for split in SPLITS:
        if split not in images.splits:
            problems.append(f"split {split}: no images file")
            continue
        stack, labels = images.images(split), images.labels(split)
        if len(stack) == 0:
            problems.append(f"split {split}: empty")
        if stack.dtype != np.uint8 or stack.ndim != 4 or stack.shape[-1] != 3 or stack.shape[1] != stack.shape[2]:
            problems.append(f"split {split}: images are {stack.dtype} {stack.shape}, not uint8 [N, S, S, 3]")
        if len(stack) != len(labels):
            problems.append(f"split {split}: {len(stack)} images but {len(labels)} label rows")
        ages = labels["real_age"]
        bad = labels[ages.isna() | (ages < 0) | (ages > MAX_LABEL_AGE)]
        if len(bad):
            problems.append(f"split {split}: {len(bad)} labels outside 0-{MAX_LABEL_AGE}, e.g. "
                            f"{bad['image_path'].iloc[0]} = {bad['real_age'].iloc[0]}")
        paths[split] = set(labels["face_path"].fillna(labels["image_path"]))
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            shared = paths.get(a, set()) & paths.get(b, set())
            if shared:
                problems.append(f"{len(shared)} images in both {a} and {b}, e.g. {sorted(shared)[0]}")
    return problems


@dg.asset_check(asset="image_arrays", blocking=True,
                description="No empty split, uint8 [N, S, S, 3] images matching their labels, ages 0-120, "
                            "no image in two splits.")
def image_arrays_are_sound(image_arrays: ImageSet) -> dg.AssetCheckResult:
    problems = image_arrays_problems(image_arrays)
    listing = {"problem_list": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems))} if problems else {}
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"problems": len(problems), **listing})


def regressor_against_baseline(model: TrainedModel, images: ImageSet) -> tuple[bool, dict[str, float]]:
    """Whether the validation MAE is at most (1 - MARGIN) of the training-mean predictor's."""
    column = model.info()["target"]
    truth = images.labels("valid")[column].to_numpy()
    baseline = mae(np.full(len(truth), images.labels("train")[column].mean()), truth)
    score = mae(model.predictions("valid")["age"].to_numpy(), truth)
    return score <= (1 - MARGIN) * baseline, {"val_mae": round(score, 2), "mean_predictor_val_mae": round(baseline, 2)}


def valid_bucket_accuracy(model: TrainedModel, images: ImageSet) -> float:
    """The share of validation faces whose stored bucket is the true one."""
    truth = age_to_bucket(images.labels("valid")["real_age"].to_numpy())
    return float(np.mean(model.predictions("valid")["bucket"].to_numpy() == truth))


def classifier_against_baseline(model: TrainedModel, images: ImageSet,
                                score_name: str = "val_accuracy") -> tuple[bool, dict[str, float]]:
    """Whether the validation accuracy (reported as ``score_name``) is at least (1 + MARGIN) of the
    most common bucket's."""
    truth = age_to_bucket(images.labels("valid")["real_age"].to_numpy())
    common = np.bincount(age_to_bucket(images.labels("train")["real_age"].to_numpy())).argmax()
    baseline = float(np.mean(truth == common))
    score = valid_bucket_accuracy(model, images)
    return score >= (1 + MARGIN) * baseline, {score_name: round(score, 3),
                                              "most_common_bucket_val_accuracy": round(baseline, 3)}


IN_SAMPLE_ACCURACY = "val_accuracy_in_sample"
"""``bucket_ensemble``'s validation accuracy on the faces it was fitted on, as its check and its
metadata call it (beside its ``val_accuracy_cross_validated``, on held-out folds)."""


def model_check(asset_name: str) -> dg.AssetChecksDefinition:
    """The baseline check of one ``model_<backbone>``, ``classifier_<backbone>`` or ``bucket_ensemble``."""
    classifier = not asset_name.startswith("model_")
    baseline = "always predicting the most common bucket" if classifier else "predicting the training mean"
    split = "the validation split"
    if asset_name == "bucket_ensemble":  # fitted on the validation split: its accuracy there is in sample
        split = f"{split}, which it was fitted on (`{IN_SAMPLE_ACCURACY}`)"

        def compare(model: TrainedModel, images: ImageSet) -> tuple[bool, dict[str, float]]:
            return classifier_against_baseline(model, images, IN_SAMPLE_ACCURACY)
    else:
        compare = classifier_against_baseline if classifier else regressor_against_baseline

    @dg.asset_check(asset=asset_name, name="beats_trivial_baseline", blocking=True,
                    additional_ins={"image_arrays": dg.AssetIn("image_arrays")},
                    description=f"On {split}, clearly better ({MARGIN:.0%}) than {baseline}.")
    def check(image_arrays: ImageSet, trained: TrainedModel) -> dg.AssetCheckResult:
        passed, scores = compare(trained, image_arrays)
        return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=scores)

    return check
