"""Figures for the asset metadata, rendered to PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def age_histogram(ages_by_split: dict[str, pd.Series]) -> bytes:
    """Stacked histogram of ages, one colour per split."""
    figure, axis = plt.subplots(figsize=(7, 3))
    bins = list(range(0, 122, 2))
    names = [name for name, ages in ages_by_split.items() if len(ages)]
    axis.hist([ages_by_split[name] for name in names], bins=bins, stacked=True, label=names)
    axis.set_xlabel("age (years)")
    axis.set_ylabel("images")
    axis.legend()
    return _png(figure)


def face_grid(images: list[np.ndarray], ages: list[float], columns: int = 8) -> bytes:
    """Sample faces with their ages as titles."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.35))
    for axis in np.atleast_1d(axes).ravel():
        axis.axis("off")
    for axis, image, age in zip(np.atleast_1d(axes).ravel(), images, ages):
        axis.imshow(image)
        axis.set_title(f"{age:g}", fontsize=8)
    return _png(figure)


METRIC_LABELS = {"loss": "loss", "mae": "MAE (years)", "accuracy": "bucket accuracy"}


def learning_curves(history: dict[str, list[float]], metric: str) -> bytes:
    """Loss and ``metric`` per epoch, training against validation, on whole epochs."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3))
    for axis, name in zip(axes, ("loss", metric)):
        for prefix, style in (("", "o-"), ("val_", "o--")):
            if prefix + name in history:
                axis.plot(np.arange(1, len(history[prefix + name]) + 1), history[prefix + name], style,
                          label=("validation" if prefix else "training"))
        axis.set_xlabel("epoch")
        axis.set_ylabel(METRIC_LABELS.get(name, name))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
    return _png(figure)


def predicted_vs_true(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Scatter of predicted against true age per model, with the identity line."""
    figure, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3.2), squeeze=False)
    for axis, (name, (true, pred)) in zip(axes[0], curves.items()):
        axis.scatter(true, pred, s=3, alpha=0.4)
        axis.plot([0, 100], [0, 100], "k--", linewidth=1)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("true age")
        axis.set_ylabel("predicted age")
    return _png(figure)


def error_distribution(errors: dict[str, np.ndarray]) -> bytes:
    """Histogram of signed errors (predicted minus true) per model."""
    figure, axis = plt.subplots(figsize=(7, 3))
    bins = list(range(-40, 41, 2))
    for name, err in errors.items():
        axis.hist(np.clip(err, -40, 40), bins=bins, histtype="step", label=name)
    axis.set_xlabel("predicted - true age (years)")
    axis.set_ylabel("images")
    axis.legend(fontsize=8)
    return _png(figure)


def group_errors(groups: dict[str, dict[str, dict[str, float]]], overall: float) -> bytes:
    """MAE per group, one panel per grouping, with the overall MAE as a dashed line and the face count on each bar."""
    figure, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups), 3), squeeze=False, sharey=True)
    for axis, (grouping, table) in zip(axes[0], groups.items()):
        bars = axis.bar(list(table), [s["mae"] for s in table.values()])
        axis.bar_label(bars, labels=[str(s["faces"]) for s in table.values()], fontsize=7)
        axis.axhline(overall, color="k", linestyle="--", linewidth=1)
        axis.set_title(grouping, fontsize=9)
        axis.tick_params(axis="x", labelrotation=45, labelsize=8)
    axes[0][0].set_ylabel("MAE (years); faces on the bars")
    return _png(figure)
