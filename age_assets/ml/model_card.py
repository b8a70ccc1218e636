"""MODEL_CARD.md: what the exported model is, on which faces it was fitted and measured, how well it
does overall, per age band and per group, how it runs, and where not to trust it.

Everything in the card comes from the run's own artifacts (the evaluation report, the export's
description, the splits' labels); nothing in it is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from age_assets.datasets.manifest import SPLITS
from age_assets.ml.buckets import BUCKET_LABELS
from age_assets.ml.groups import group_columns, markdown_groups

CARD = "MODEL_CARD.md"
FEW_FACES = 0.05
"""A group with less than this share of the training faces is named among the limits."""
YOUNG_AND_OLD = ("0-2", "3-9", "66+")

TARGETS = {"real_age": "real (documented) age", "apparent_age_mean": "apparent age (the mean of people's guesses)"}


def _what_it_is(report: dict, export: dict) -> list[str]:
    target = TARGETS.get(report["dataset"]["target"], report["dataset"]["target"])
    lines = ["## What it is", "",
             f"An estimator of {target} in years, with probabilities over the {len(export['bucket_labels'])} age "
             f"bands {', '.join(export['bucket_labels'])}, from one face crop. It is an ensemble fitted by transfer "
             "learning from small pretrained backbones; the members and their weights in the age:", "",
             "| member | backbone | weight in the age |", "|---|---|---|"]
    lines += [f"| {m['name']} | {m['backbone']} | {m['weight']:.3f} |" for m in export.get("members", [])]
    if export.get("classifiers"):
        lines += ["", f"Bucket probabilities: {', '.join(export['classifiers'])}, stacked by "
                      f"{export.get('bucket_stacker', 'their average')}."]
    return lines


def _data(labels: dict[str, pd.DataFrame]) -> list[str]:
    folders = sorted({str(Path(p).parent) for table in labels.values() for p in table["image_path"]})
    lines = ["## Data and splits", "", f"Faces from {', '.join(folders)}. Training fitted the models, validation "
             "chose epochs and member weights, and every figure below is on the test split, which nothing was "
             "fitted on.", "", "| split | faces | ages | median age |", "|---|---|---|---|"]
    for split in (s for s in SPLITS if s in labels):
        ages = labels[split]["real_age"]
        lines.append(f"| {split} | {len(ages)} | {ages.min():g}-{ages.max():g} | {ages.median():g} |")
    train = labels.get("train")
    if train is not None:
        for grouping, names in group_columns(train).items():
            counts = names.value_counts()
            missing = int(names.isna().sum())
            lines += ["", f"Training faces per {grouping}: " + ", ".join(f"{n} {c}" for n, c in counts.items())
                      + (f"; {missing} without one." if missing else ".")]
    return lines


def _performance(report: dict) -> list[str]:
    ensemble = report["ages"]["ensemble"]
    lines = ["## How well it does (test split)", "", "CS(5) is the share of faces within 5 years.", "",
             markdown_groups(report["groups"]).rstrip()]
    if "mae_apparent" in ensemble:
        lines += ["", f"Against apparent age: MAE {ensemble['mae_apparent']:.2f}, epsilon error "
                      f"{ensemble['epsilon_error']:.3f}."]
    return lines


def _intervals(report: dict) -> list[str]:
    intervals = report.get("intervals")
    lines = ["## Intervals", ""]
    if not intervals:
        return lines + ["No interval calibrated: the model gives an age without a measured range around it."]
    levels = sorted(intervals, key=float)
    lines += ["Share of test faces whose true age fell inside the interval, and the interval's mean width:", "",
              "| interval | coverage | mean width (years) |", "|---|---|---|"]
    lines += [f"| {level}% | {intervals[level]['coverage']:.3f} | {intervals[level]['mean_width']:.1f} |"
              for level in levels]
    bands = [b for b in BUCKET_LABELS if any(b in intervals[level].get("per_band", {}) for level in levels)]
    if bands:
        lines += ["", "| age band | faces | " + " | ".join(f"{lv}% coverage | {lv}% width" for lv in levels) + " |",
                  "|---|---|" + "---|---|" * len(levels)]
        for band in bands:
            cells = [intervals[lv].get("per_band", {}).get(band) for lv in levels]
            faces = next(c["faces"] for c in cells if c)
            lines.append(f"| {band} | {faces} | " + " | ".join(
                f"{c['coverage']:.3f} | {c['mean_width']:.1f}" if c else " | " for c in cells) + " |")
    return lines


def _how_it_runs(export: dict) -> list[str]:
    lines = ["## How it runs", "", f"Input: {export['input']}; any size, resized inside to "
             f"{export['image_size']} px. Outputs: " + ", ".join(f"`{k}` {v}" for k, v in export["outputs"].items())
             + ". The same model in three files beside this card:", "", "| runtime | file |", "|---|---|"]
    lines += [f"| {name} | `{file}` |" for name, file in export["files"].items()]
    lines += ["", "`age-assets predict` and `age-assets serve` find the faces in whole photos, cut each the way the "
                  "training faces were cut and run the lightest of these files."]
    return lines


def _limits(report: dict, labels: dict[str, pd.DataFrame]) -> list[str]:
    groups, overall = report["groups"], report["groups"]["overall"]["mae"]
    bands = groups["groups"]["age band"]
    lines = ["## Limits", ""]
    young_old = [f"{b} ({bands[b]['faces']} test faces, MAE {bands[b]['mae']:.2f}, {bands[b]['mae'] / overall:.2f}x "
                 "the overall)" for b in YOUNG_AND_OLD if b in bands]
    train = labels.get("train")
    elderly = "" if train is None else f" {float((train['real_age'] >= 66).mean()):.1%} of the training faces are 66+."
    lines.append("- Children and the elderly: " + ("; ".join(young_old) if young_old else "no test faces") + ". "
                 "An error of a few years means more at 5 than at 35." + elderly)
    worse = groups["above_overall"]
    lines.append(f"- Groups with MAE more than {groups['gap']:.0%} above the overall: "
                 + (", ".join(worse) if worse else "none") + ".")
    if train is not None:
        few = [f"{grouping}: {name} ({count} training faces)"
               for grouping, names in group_columns(train).items() if grouping != "age band"
               for name, count in names.value_counts().items() if count < FEW_FACES * len(train)]
        lines.append(f"- Groups with fewer than {FEW_FACES:.0%} of the training faces, whose figures rest on few "
                     "faces: " + (", ".join(few) if few else "none") + ".")
        if not any(g in group_columns(train) for g in ("gender", "race")):
            lines.append("- The data names no gender or race: how the model does per group is not measured.")
    lines.append("- Photo conditions: measured on face crops like the training ones; profile views, occlusion "
                 "(masks, sunglasses), dim light, blur and heavy retouching are not measured, and a face the "
                 "detector cuts badly gets a worse estimate.")
    target = report["dataset"]["target"]
    lines.append("- Real versus apparent age: it estimates " + TARGETS.get(target, target) + " from how a face looks; "
                 "a face can look years older or younger than it is, so one estimate neither proves an age nor "
                 "replaces a document.")
    return lines


def model_card(report: dict, export: dict, labels: dict[str, pd.DataFrame]) -> str:
    """The card of an export: ``report`` is ``evaluation.json``'s content, ``export`` ``export.json``'s,
    ``labels`` each split's label table (``ImageSet.labels``)."""
    sections = [_what_it_is(report, export), _data(labels), _performance(report), _intervals(report),
                _how_it_runs(export), _limits(report, labels)]
    title = f"# Model card: age estimator ({report['dataset']['test_images']} test faces)"
    return "\n\n".join(["\n".join([title, ""] + sections[0])] + ["\n".join(s) for s in sections[1:]]) + "\n"
