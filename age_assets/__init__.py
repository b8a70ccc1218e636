"""age_assets: a Dagster code location that trains facial age estimators by transfer learning."""

from age_assets.definitions import defs

__all__ = ["defs"]
