"""Figures for the asset metadata, rendered to PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def age_histogram(ages_by_split: dict[str, pd.Series]) -> bytes:
    """Stacked histogram of ages, one colour per split."""
    figure, axis = plt.subplots(figsize=(7, 3))
    bins = np.arange(0, 122, 2)
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
