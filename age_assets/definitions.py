"""The code location: assets, resources and IO manager, configured from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from age_assets.assets.dataset import augmented_train, image_arrays, raw_dataset
from age_assets.io_managers import ArtifactIOManager
from age_assets.resources import DatasetSource, Storage

ASSETS = [raw_dataset, image_arrays, augmented_train]

ENV_DATASET = "AGE_ASSETS_DATASET"
ENV_TEST_DATASET = "AGE_ASSETS_TEST_DATASET"
ENV_DATA_DIR = "AGE_ASSETS_DATA_DIR"
ENV_APPA_URL = "AGE_ASSETS_APPA_URL"
ENV_APPA_CHECKSUM = "AGE_ASSETS_APPA_CHECKSUM"


def build_defs(env: Mapping[str, str] = os.environ) -> dg.Definitions:
    """Definitions for the settings in ``env`` (the process environment by default)."""
    data_dir = env.get(ENV_DATA_DIR, "data")
    download = {field: env[name] for field, name in
                (("appa_real_url", ENV_APPA_URL), ("appa_real_checksum", ENV_APPA_CHECKSUM)) if name in env}
    source = DatasetSource(spec=env.get(ENV_DATASET, "appa-real"), test_spec=env.get(ENV_TEST_DATASET, ""), **download)
    return dg.Definitions(
        assets=ASSETS,
        resources={
            "dataset": source,
            "storage": Storage(data_dir=data_dir),
            "io_manager": ArtifactIOManager(data_dir=data_dir),
        },
    )


defs = build_defs()
