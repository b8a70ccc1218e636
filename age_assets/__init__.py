"""age_assets: a Dagster code location that trains facial age estimators by transfer learning.

``defs`` is built on first access (PEP 562), so importing a plain module of the package (a dataset
reader, the serving code) loads neither Dagster nor the asset graph. Dagster's ``-m age_assets``
finds it all the same: it looks the name up with ``dir`` and ``getattr``. The plain install runs the
exported model only; Dagster, TensorFlow and the rest of the graph's stack come with the ``train`` extra.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# TensorFlow leaves oneDNN off on some CPUs; on this project's models it is 1.5x faster.
# Set before TensorFlow is first imported; an explicit setting in the environment wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

if TYPE_CHECKING:
    import dagster as dg

    defs: dg.Definitions

__all__ = ["defs"]


def __getattr__(name: str) -> object:
    if name == "defs":
        try:
            from age_assets.definitions import defs
        except ModuleNotFoundError as error:
            if (error.name or "age_assets").startswith("age_assets"):
                raise
            raise ModuleNotFoundError(f"the asset graph needs {error.name}, which is not installed (the plain "
                                      "install runs the exported model only): pip install 'age_assets[train]'",
                                      name=error.name) from error
        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
