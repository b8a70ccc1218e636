"""age_assets: a Dagster code location that trains facial age estimators by transfer learning."""

import os

# TensorFlow leaves oneDNN off on some CPUs; on this project's models it is 1.5x faster.
# Set before TensorFlow is first imported; an explicit setting in the environment wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from age_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
