"""The data half of the graph: raw_dataset -> image_arrays -> augmented_train."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from age_assets.artifacts import ImageSet, Manifest
from age_assets.assets.metadata import check_skipped_share, png, progress_logger, skipped_table
from age_assets.assets.names import DATA
from age_assets.assets.outputs import artifact_output
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.datasets.manifest import SPLITS, Skip, file_stats
from age_assets.ml.augment import Pipeline, augment_stack
from age_assets.ml.images import try_load_rgb, write_image_stack
from age_assets.ml.progress import Progress
from age_assets.plots import age_histogram, face_grid
from age_assets.resources import DatasetSource, Storage

SAMPLE_FACES = 16
MANIFEST_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("split", "string", "train, valid or test"),
    dg.TableColumn("image_path", "string", "the full image"),
    dg.TableColumn("face_path", "string", "the face crop (the image itself where a dataset ships crops only)"),
    dg.TableColumn("real_age", "int", "age in years, 0-120"),
    dg.TableColumn("apparent_age_mean", "float", "mean of the apparent-age votes; empty without votes"),
    dg.TableColumn("apparent_age_std", "float", "their standard deviation; empty without votes"),
    dg.TableColumn("num_ratings", "int", "how many votes; empty without votes"),
    dg.TableColumn("gender", "int", "0 male, 1 female; empty where the source names none"),
    dg.TableColumn("race", "int", "0 White, 1 Black, 2 Asian, 3 Indian, 4 Others; empty where the source names none"),
])
"""``manifest.csv``'s columns (``datasets.manifest.COLUMNS``), shown in the UI's column schema."""


class RawDatasetConfig(VersionedConfig):
    max_skipped_share: float = Field(
        default=0.01, description="Fail when more than this share of the listed images is skipped"
    )


class ImageArraysConfig(VersionedConfig):
    image_size: int = Field(default=224, description="Side S of the square uint8 [N, S, S, 3] arrays")
    crop: Literal["face", "full", "detect"] = Field(
        default="face",
        description="'face': the dataset's face crops, and where it ships none (whole photos, as FG-NET) the face "
                    "cut by the detector and crop rule of `predict`; 'full': the whole images, squared; 'detect': "
                    "every image's face cut by the detector and crop rule, as `predict` cuts it",
    )
    workers: int = Field(default=0, description="Decoding threads; 0 uses every core")
    max_skipped_share: float = Field(
        default=0.01, description="Fail when more than this share of images cannot be decoded"
    )


class AugmentedTrainConfig(VersionedConfig):
    factor: int = Field(
        default=4, description="Copies per training image: the original plus factor - 1 augmented ones"
    )
    seed: int = Field(default=0, description="Seed of the augmentation; the same seed gives the same pixels")
    pipeline: Pipeline = Field(
        default="camera",
        description="'study': the study's rotation, flip, shift/scale and brightness/contrast; 'camera': those, "
                    "then greyscale or sepia, blur or downscaling, noise, gamma and colour casts, low JPEG quality",
    )
    workers: int = Field(default=0, description="Augmentation threads; 0 uses every core")


RAW_DATASET_VERSION = code_version("2", RawDatasetConfig)
IMAGE_ARRAYS_VERSION = code_version("3", ImageArraysConfig)
AUGMENTED_TRAIN_VERSION = code_version("1", AugmentedTrainConfig)


def _require_every_split(counts: dict[str, int], what: str) -> None:
    empty = [split for split in SPLITS if not counts.get(split)]
    if empty:
        raise dg.Failure(f"{what} has no images in split(s) {', '.join(empty)}; every split needs some")


def write_skipped(folder: Path, skipped: list[Skip]) -> None:
    pd.DataFrame(skipped, columns=["path", "reason"]).to_csv(folder / "skipped.csv", index=False)


def _skipped_metadata(folder: Path) -> dict[str, Any]:
    table = pd.read_csv(folder / "skipped.csv")
    skipped = [Skip(p, r) for p, r in zip(table["path"], table["reason"])]
    return {"skipped": len(skipped), "skipped_files": skipped_table(skipped)}


def _sample_rows(n: int, k: int = SAMPLE_FACES) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(n, size=min(n, k), replace=False))


def _image_set_metadata(images: ImageSet) -> dict[str, Any]:
    labels = {split: images.labels(split) for split in images.splits}
    first = images.splits[0] if "train" not in labels else "train"
    stack = images.images(first)
    rows = _sample_rows(len(stack))
    return {
        **{f"{split}_images": len(table) for split, table in labels.items()},
        "image_shape": str(tuple(stack.shape[1:])),
        "age_histogram": png(age_histogram({s: t["real_age"] for s, t in labels.items()}), "age histogram"),
        "sample_faces": png(face_grid([stack[r] for r in rows], list(labels[first]["real_age"].iloc[rows])),
                            f"sample faces ({first})"),
        "folder": dg.MetadataValue.path(str(images.folder)),
    }


@dg.asset(
    code_version=RAW_DATASET_VERSION,
    kinds={"pandas"},
    group_name=DATA,
    description="Manifest of the face dataset: split, image paths, real age, apparent-age votes, gender and race.",
)
def raw_dataset(
    context: dg.AssetExecutionContext, config: RawDatasetConfig, dataset: DatasetSource, storage: Storage
) -> dg.Output[Manifest]:
    started = time.perf_counter()
    table, skipped = dataset.read(storage.sources, progress_logger(context.log, "download"))
    check_skipped_share(skipped, len(table) + len(skipped), config.max_skipped_share, "listed images")
    counts = table["split"].value_counts().to_dict()
    _require_every_split(counts, f"dataset {dataset.describe()}")
    stats = file_stats(sorted(set(table["image_path"]) | set(table["face_path"].dropna())))
    version = data_version(RAW_DATASET_VERSION, config, table.to_csv(index=False), stats)

    def write(folder: Path) -> None:
        table.to_csv(folder / "manifest.csv", index=False)
        write_skipped(folder, skipped)

    def metadata(manifest: Manifest) -> dict[str, Any]:
        train = table[table["split"] == "train"].reset_index(drop=True)
        faces, ages = [], []
        for row in _sample_rows(len(train)):
            face = try_load_rgb(train.at[row, "face_path"] if pd.notna(train.at[row, "face_path"])
                                else train.at[row, "image_path"], 96)
            if not isinstance(face, Skip):
                faces.append(face)
                ages.append(train.at[row, "real_age"])
        return {
            **{f"{split}_images": int(counts.get(split, 0)) for split in SPLITS},
            "source": dataset.describe(),
            **_skipped_metadata(manifest.folder),
            "age_histogram": png(age_histogram({s: g["real_age"] for s, g in table.groupby("split")}),
                                 "age histogram"),
            "sample_faces": png(face_grid(faces, ages), "sample faces"),
            "source_files_mb": round(sum(size for _, size, _ in stats) / 1e6, 1),
            "dagster/column_schema": MANIFEST_SCHEMA,
        }

    return artifact_output(storage, "raw_dataset", version, write, Manifest, started, metadata)


def image_sources(table: pd.DataFrame, crop: str) -> tuple[np.ndarray, np.ndarray]:
    """Per manifest row, the file to read and whether its face is cut by the detector."""
    if crop == "full":
        return table["image_path"].to_numpy(str), np.zeros(len(table), bool)
    if crop == "detect":
        return table["image_path"].to_numpy(str), np.ones(len(table), bool)
    whole = table["face_path"].isna().to_numpy()
    return table["face_path"].fillna(table["image_path"]).to_numpy(str), whole


def face_cutting() -> str:
    """What names the detector and crop rule in a data version: a new rule recuts the faces."""
    from age_assets.serving.detector import DEFAULT_MODEL
    from age_assets.serving.face_crops import RULE

    return f"{DEFAULT_MODEL} {RULE}"


def image_loader(size: int, detected: set[str]) -> Callable[[str], np.ndarray | Skip]:
    """Reads each path as ``try_load_rgb`` does, except those in ``detected``: whole photos whose one
    face is cut as ``predict`` cuts it (``serving.photos.FaceCutter``); a photo with no face or several
    is a skip with its reason."""
    if not detected:
        return lambda path: try_load_rgb(path, size)
    from age_assets.serving.photos import FaceCutter, PhotoError

    cutter = FaceCutter(size)

    def load(path: str) -> np.ndarray | Skip:
        if path not in detected:
            return try_load_rgb(path, size)
        try:
            return cutter(path)
        except PhotoError as error:
            return Skip(path, str(error).removeprefix(f"{path}: "))

    return load


@dg.asset(
    code_version=IMAGE_ARRAYS_VERSION,
    kinds={"numpy"},
    group_name=DATA,
    description="Per split, uint8 [N, S, S, 3] .npy images (memory-mapped) with their labels beside them.",
)
def image_arrays(
    context: dg.AssetExecutionContext, config: ImageArraysConfig, raw_dataset: Manifest, storage: Storage
) -> dg.Output[ImageSet]:
    started = time.perf_counter()
    table = raw_dataset.table()
    paths, detected = image_sources(table, config.crop)
    cutting = [face_cutting()] if detected.any() else []
    version = data_version(IMAGE_ARRAYS_VERSION, config, raw_dataset.fingerprint, *cutting)

    def write(folder: Path) -> None:
        skipped: list[Skip] = []
        load = image_loader(config.image_size, set(paths[detected]))
        for split in SPLITS:
            in_split = (table["split"] == split).to_numpy()
            rows = table[in_split].reset_index(drop=True)
            cut = int(detected[in_split].sum())
            context.log.info(f"decoding {len(rows)} {split} images at {config.image_size} px"
                             + (f", cutting the face out of {cut} whole photos" if cut else ""))
            kept, split_skipped = write_image_stack(
                list(paths[in_split]), ImageSet(folder, version).images_path(split), config.image_size,
                config.workers or None, Progress(context.log.info, f"decoding {split} images", len(rows)).advance,
                load,
            )
            if not kept.any():
                raise dg.Failure(f"no {split} image of {raw_dataset.folder / 'manifest.csv'} could be decoded")
            skipped.extend(split_skipped)
            rows[kept].to_csv(folder / f"{split}_labels.csv", index=False)
        check_skipped_share(skipped, len(table), config.max_skipped_share, "images")
        write_skipped(folder, skipped)

    return artifact_output(storage, "image_arrays", version, write, ImageSet, started,
                           lambda images: {**_image_set_metadata(images), **_skipped_metadata(images.folder)})


@dg.asset(
    code_version=AUGMENTED_TRAIN_VERSION,
    kinds={"numpy"},
    group_name=DATA,
    description=(
        "The training split grown by albumentations (the study's steps, then camera and scan effects: config "
        "'pipeline'); copy 0 of each image is the original."
    ),
)
def augmented_train(
    context: dg.AssetExecutionContext, config: AugmentedTrainConfig, image_arrays: ImageSet, storage: Storage
) -> dg.Output[ImageSet]:
    started = time.perf_counter()
    version = data_version(AUGMENTED_TRAIN_VERSION, config, image_arrays.fingerprint)

    def write(folder: Path) -> None:
        labels = image_arrays.labels("train")
        context.log.info(f"augmenting {len(labels)} training images x{config.factor}")
        augment_stack(image_arrays.images_path("train"), ImageSet(folder, version).images_path("train"),
                      config.factor, config.seed, config.workers or None,
                      progress=Progress(context.log.info, f"augmenting x{config.factor}", len(labels)).advance,
                      pipeline=config.pipeline)
        grown = labels.loc[labels.index.repeat(config.factor)].reset_index(names="source_row")
        grown["copy"] = np.tile(np.arange(config.factor), len(labels))
        grown.to_csv(folder / "train_labels.csv", index=False)

    return artifact_output(storage, "augmented_train", version, write, ImageSet, started, _image_set_metadata)
