"""Tiny generated datasets in the UTKFace and APPA-REAL layouts, and a helper to materialize."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Generator, Mapping
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from age_assets.definitions import build_defs
from age_assets.ml.intervals import IntervalTable

SHARED = next((p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
              Path("../shared"))
SHARED_UTKFACE = SHARED / "data" / "utkface"
SHARED_WEIGHTS = SHARED / "weights"


def pytest_configure(config: pytest.Config) -> None:
    """`make` exports DAGSTER_HOME for `make run`. Tests and the processes they start keep instances of
    their own (ephemeral, or a DAGSTER_HOME a test sets itself): parallel workers creating one SQLite
    store at once fail with "table ... already exists", and a test run would write into the user's."""
    os.environ.pop("DAGSTER_HOME", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Tests marked ``shared`` skip only where ../shared is missing. Where it is here (``SHARED_UTKFACE``
    is a folder, as in CI), such a skip becomes a failure naming its reason: a wrong path or a missing
    file cannot pass as a skip. ``@pytest.mark.shared(allowed_skip="needs Chromium")`` lets skips whose
    reason starts with that text through, as they do not depend on ../shared."""
    report = yield
    marker = item.get_closest_marker("shared")
    if marker is None or not report.skipped or hasattr(report, "wasxfail") or not SHARED_UTKFACE.is_dir():
        return report
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
    allowed = marker.kwargs.get("allowed_skip", ())
    if reason.startswith((allowed,) if isinstance(allowed, str) else tuple(allowed)):
        return report
    report.outcome = "failed"
    report.longrepr = (f"{item.nodeid} is marked 'shared' and {SHARED} is here, yet it was skipped: {reason}\n"
                       "Fix the path or the file it looks for, or the skip condition.")
    return report


def synthetic_face(age: float, size: int = 48, seed: int = 0) -> Image.Image:
    """An RGB image whose red channel is flat at ``2 * age``: labels can be read back from pixels.

    Green holds a diagonal gradient and blue an off-centre disc, so geometric augmentations
    visibly change the picture.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0] = round(2 * age)
    image[..., 1] = (x + y) * 255 // (2 * size - 2)
    cy, cx = size * 0.4 + rng.integers(-3, 4), size * 0.6 + rng.integers(-3, 4)
    image[..., 2] = np.where((y - cy) ** 2 + (x - cx) ** 2 < (size / 4) ** 2, 220, 30)
    return Image.fromarray(image)


def red_age(images: np.ndarray) -> np.ndarray:
    """The age encoded by ``synthetic_face`` in each image of a stack."""
    return images[..., 0].reshape(len(images), -1).mean(axis=1) / 2


def write_utkface(folder: Path, n: int = 80, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        age = 1 + (i * 7) % 90
        path = folder / f"{age}_{i % 2}_{i % 5}_2017010{i % 10}{i:08d}.jpg.chip.jpg"
        synthetic_face(age, seed=i).save(path, quality=95)
        paths.append(path)
    return paths


def write_appa_real(root: Path, per_split: Mapping[str, int] | None = None) -> Path:
    """An extracted APPA-REAL release: ``root/appa-real-release/{split}/`` plus ``gt_avg_*.csv``."""
    release = root / "appa-real-release"
    counts = per_split or {"train": 12, "valid": 6, "test": 6}
    index = 0
    for split, n in counts.items():
        (release / split).mkdir(parents=True)
        lines = ["file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age"]
        for _ in range(n):
            name = f"{index:06d}.jpg"
            real = 5 + (index * 11) % 80
            apparent = real + 1.5
            synthetic_face(real, size=64, seed=index).save(release / split / name, quality=95)
            synthetic_face(real, size=40, seed=index).save(release / split / f"{name}_face.jpg", quality=95)
            lines.append(f"{name},{30 + index % 9},{apparent:.3f},{2 + index % 3:.3f},{real}")
            index += 1
        (release / f"gt_avg_{split}.csv").write_text("\n".join(lines) + "\n")
    return release


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))
    return archive


@pytest.fixture
def utkface_dir(tmp_path: Path) -> Path:
    write_utkface(tmp_path / "utkface")
    return tmp_path / "utkface"


@pytest.fixture
def appa_real_zip(tmp_path: Path) -> Path:
    release = write_appa_real(tmp_path / "appa-src")
    return zip_folder(release, tmp_path / "appa-real-release.zip")


Materialize = Callable[..., dg.ExecuteInProcessResult]


@pytest.fixture
def materialize(tmp_path: Path) -> Materialize:
    """Materialize a selection in process with settings given as environment variables."""

    def run(env: Mapping[str, str], selection: str, run_config: Mapping | None = None,
            raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        settings = {"AGE_ASSETS_DATA_DIR": str(tmp_path / "data"), **env}
        defs = build_defs(settings)
        return dg.materialize(list(defs.assets), resources=defs.resources, selection=selection.split(","),
                              run_config=dict(run_config or {}), raise_on_error=raise_on_error)

    return run


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder (all three formats and ``export.json``) of a small real model: MobileNetV3Small
    at 32 px with random weights, one regressor and one classifier over years (both give ages),
    mirror-averaged. Its ages mean nothing; everything around them (detector, crops, runtimes,
    server) runs for real."""
    import keras

    from age_assets.ml.age_distribution import YEARS
    from age_assets.ml.backbones import get_backbone
    from age_assets.ml.export import Member, export_all, inference_model
    from age_assets.ml.models import build_model
    from age_assets.ml.specs import HeadSpec

    folder = tmp_path_factory.mktemp("export")
    spec = get_backbone("mobilenet_v3_small")
    keras.utils.set_random_seed(0)
    members = [Member(model=build_model(spec.name, 32, None, HeadSpec(units=8, dropout=0), 0, classes),
                      scale=spec.scale, offset=spec.offset, mirror_average=True, **roles)
               for classes, roles in ((0, {"age_weight": 0.6}), (YEARS, {"age_weight": 0.4, "buckets": True}))]
    export_all(inference_model(32, members), folder, 32, intervals=synthetic_interval_table().to_json())
    return folder


def synthetic_interval_table(n: int = 2000, seed: int = 0) -> IntervalTable:
    """An interval table calibrated on generated validation predictions (errors of a few years)."""
    return IntervalTable.calibrate(*noisy_ages(n, seed))


def noisy_ages(n: int, seed: int, pull: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true ages of ``n`` generated faces: the error grows with the age, as with real
    faces; ``pull`` (0-1) draws every prediction that share of the way towards 35, as a model that
    regresses to the mean does."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 90, n)
    predicted = truth + rng.normal(0, 1, n) * (0.5 + 0.08 * truth)
    return np.clip(predicted + pull * (35 - predicted), 0, None), truth
