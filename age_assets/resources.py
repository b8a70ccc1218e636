"""Dagster resources: where the data comes from and where artifacts go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from age_assets.datasets.appa_real import OFFICIAL_CHECKSUM, OFFICIAL_URL
from age_assets.datasets.download import Progress
from age_assets.datasets.manifest import Skip
from age_assets.datasets.sources import Download, SourceSpec, read_source, source_state
from age_assets.ml.weights import weights_identity, weights_source


class DatasetSource(dg.ConfigurableResource):
    """The dataset ``raw_dataset`` reads (set from ``AGE_ASSETS_DATASET`` and friends)."""

    spec: str = Field(
        default="appa-real",
        description="'appa-real' (download), 'appa-real:/path/to/archive-or-folder', 'utkface:/path/to/folder' or "
                    "'fgnet:/path/to/folder' (whole photos, faces cut by the detector)",
    )
    test_spec: str = Field(
        default="", description="Optional source, same syntax, whose images replace the test split"
    )
    appa_real_url: str = Field(default=OFFICIAL_URL, description="Where 'appa-real' downloads from")
    appa_real_checksum: str = Field(
        default=OFFICIAL_CHECKSUM, description="'algorithm:hex' of the archive; empty to skip the check"
    )
    download_retries: int = Field(
        default=4, description="Retries of a failed download, with exponential backoff from 2 s"
    )

    def _download(self) -> Download:
        return Download(self.appa_real_url, self.appa_real_checksum or None, self.download_retries)

    def state(self) -> str:
        """A fingerprint of the source's files (and the test source's) that changes when they do."""
        specs = [s for s in (self.spec, self.test_spec) if s]
        return "-".join(source_state(SourceSpec.parse(s), self._download()) for s in specs)

    def read(self, workdir: Path, progress: Progress | None = None) -> tuple[pd.DataFrame, list[Skip]]:
        fetch = self._download()
        table, skipped = read_source(SourceSpec.parse(self.spec), workdir, fetch, progress=progress)
        if self.test_spec:
            test, test_skipped = read_source(SourceSpec.parse(self.test_spec), workdir, fetch, "test", progress)
            table = pd.concat([table[table["split"] != "test"], test], ignore_index=True)
            skipped += test_skipped
        return table, skipped

    def describe(self) -> str:
        return self.spec + (f" (test: {self.test_spec})" if self.test_spec else "")


class Storage(dg.ConfigurableResource):
    """The storage root (``AGE_ASSETS_DATA_DIR``): downloads, artifacts and run history live here."""

    data_dir: str = Field(default="data", description="Storage root; relative paths start at the working directory")
    keep_versions: int = Field(
        default=0, ge=0,
        description="After each materialization, remove the asset's versions beyond its newest this many, except "
                    "those a pointer or a running run uses; 0 keeps every version",
    )

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    def artifact(self, asset: str, fingerprint: str) -> Path:
        """The folder of one version of an asset's artifact."""
        return self.root / "artifacts" / asset / fingerprint

    @property
    def sources(self) -> Path:
        return self.root / "sources"


class BackboneWeights(dg.ConfigurableResource):
    """Where ImageNet weights come from (``AGE_ASSETS_WEIGHTS_DIR``)."""

    weights_dir: str = Field(
        default="",
        description="Folder of <backbone>.weights.h5 no-top files (and hse_faceres/ for mobilenet_v1_faces); "
                    "backbones without one download their published weights",
    )

    def source(self, backbone: str) -> str:
        return weights_source(backbone, self.weights_dir)

    def identity(self, backbone: str) -> str:
        """What names the weights in a data version: a digest of the file, or 'imagenet'."""
        return weights_identity(self.source(backbone))


class Accelerator(dg.ConfigurableResource):
    """The device training runs on: the GPU where TensorFlow sees one, else the CPU."""

    memory_growth: bool = Field(
        default=True, description="Take GPU memory as needed rather than all of it at start (GPU only)"
    )
    mixed_precision: bool = Field(
        default=False, description="Compute in float16 with float32 outputs and weights (GPU only)"
    )

    def activate(self) -> str:
        """Set TensorFlow up for the device found; return what a training asset records as its device."""
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        policy = "mixed_float16" if gpus and self.mixed_precision else "float32"
        keras.mixed_precision.set_global_policy(policy)
        if not gpus:
            return "CPU"
        if self.memory_growth:
            for gpu in gpus:
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:  # the GPU was initialised earlier in this process
                    pass
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
        return f"GPU ({name}, {policy})"

    def identity(self) -> list[object]:
        """What of the accelerator changes a model's numbers, for data versions."""
        return ["mixed_float16"] if self.mixed_precision else []


class ExperimentTracking(dg.ConfigurableResource):
    """Optional MLflow tracking of every training step (``AGE_ASSETS_MLFLOW_URI``; the ``tracking``
    extra): its settings, metrics per epoch, final metrics and the trained artifact. Off while
    ``mlflow_uri`` is empty."""

    mlflow_uri: str = Field(default="", description="MLflow tracking URI (sqlite:///path/mlflow.db, http://host:5000); "
                                                    "empty: no tracking")
    experiment: str = Field(default="age_assets", description="MLflow experiment the runs go into")

    @property
    def enabled(self) -> bool:
        return bool(self.mlflow_uri)

    @contextmanager
    def run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> Iterator[Any]:
        """An MLflow run (the module, for its ``log_*`` calls) with ``params`` logged; None when off.

        A new experiment keeps its artifacts beside a local database (``<db folder>/mlartifacts``),
        not in the working directory.
        """
        if not self.enabled:
            yield None
            return
        try:
            import mlflow
        except ImportError as error:
            raise dg.Failure("MLflow tracking is on (AGE_ASSETS_MLFLOW_URI) but mlflow is not installed: "
                             "pip install 'age_assets[tracking]'") from error
        mlflow.set_tracking_uri(self.mlflow_uri)
        if mlflow.get_experiment_by_name(self.experiment) is None:
            local = self.mlflow_uri.startswith("sqlite:///")
            location = Path(self.mlflow_uri.removeprefix("sqlite:///")).parent / "mlartifacts" if local else None
            mlflow.create_experiment(self.experiment, artifact_location=location.as_uri() if location else None)
        mlflow.set_experiment(self.experiment)
        with mlflow.start_run(run_name=name, tags=tags):
            mlflow.log_params(params)
            yield mlflow
