"""The three dataset assets materialized in process on generated data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from age_assets.artifacts import ImageSet, Manifest
from age_assets_tests.conftest import Materialize, red_age, write_utkface

SMALL = {"ops": {"image_arrays": {"config": {"image_size": 32}}}}
DATA = "raw_dataset,image_arrays"
ALL = "raw_dataset,image_arrays,augmented_train"


def check_aligned(images: ImageSet, split: str) -> None:
    stack, labels = images.images(split), images.labels(split)
    assert stack.dtype == np.uint8 and stack.shape[1:] == (32, 32, 3) and len(stack) == len(labels)
    assert isinstance(stack, np.memmap), "arrays are read back memory-mapped"
    assert np.allclose(red_age(stack), labels["real_age"], atol=1.5), "each label sits beside its image"


def test_utkface_through_augmentation(materialize: Materialize, utkface_dir: Path) -> None:
    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}, ALL, SMALL)
    manifest: Manifest = result.output_for_node("raw_dataset")
    table = manifest.table()
    assert len(table) == 80 and set(table["split"]) == {"train", "valid", "test"}
    assert table["apparent_age_mean"].isna().all()

    arrays: ImageSet = result.output_for_node("image_arrays")
    assert arrays.splits == ["test", "train", "valid"]
    for split in arrays.splits:
        check_aligned(arrays, split)
        assert len(arrays.labels(split)) == (table["split"] == split).sum()

    augmented: ImageSet = result.output_for_node("augmented_train")
    source, grown = arrays.images("train"), augmented.images("train")
    labels = augmented.labels("train")
    assert grown.shape == (4 * len(source), 32, 32, 3)
    assert np.array_equal(grown[::4], source), "copy 0 of each image is the original"
    assert (labels["real_age"].to_numpy() == np.repeat(arrays.labels("train")["real_age"].to_numpy(), 4)).all()
    assert (labels["copy"].to_numpy() == np.tile(np.arange(4), len(source))).all()
    copies = grown.reshape(len(source), 4, -1).astype(int)
    changed = np.abs(copies[:, 1:] - copies[:, :1]).mean(axis=2) > 1
    assert changed.mean() > 0.8, "augmented copies differ from their originals"

    events = result.asset_materializations_for_node("image_arrays")
    metadata = events[0].metadata
    assert metadata["train_images"].value == len(source)
    assert metadata["size_mb"].value > 0.99 * source.nbytes / 1e6, "three significant digits of the bytes on disk"
    assert metadata["age_histogram"].value.startswith("![age histogram](data:image/png;base64,")


def test_augmentation_repeats_with_its_seed(materialize: Materialize, utkface_dir: Path) -> None:
    env = {"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}
    first = materialize(env, ALL, SMALL).output_for_node("augmented_train")
    pixels = np.array(first.images("train"))
    again = materialize(env, "augmented_train", {"ops": {"augmented_train": {"config": {"seed": 0}}}})
    assert again.asset_materializations_for_node("augmented_train")[0].metadata["reused"].value
    other = materialize(env, "augmented_train", {"ops": {"augmented_train": {"config": {"seed": 1, "factor": 3}}}})
    other_set: ImageSet = other.output_for_node("augmented_train")
    assert other_set.folder != first.folder
    assert not np.array_equal(np.array(other_set.images("train"))[1::3], pixels[1::4])
    first.folder.rename(first.folder.with_name("moved"))
    rebuilt = materialize(env, "augmented_train", {"ops": {"augmented_train": {"config": {"seed": 0}}}})
    assert np.array_equal(np.array(rebuilt.output_for_node("augmented_train").images("train")), pixels)


def test_split_is_deterministic_across_runs(materialize: Materialize, utkface_dir: Path, tmp_path: Path) -> None:
    env = {"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}
    before = materialize(env, "raw_dataset").output_for_node("raw_dataset").table()
    write_utkface(utkface_dir, n=20, start=500)
    after = materialize(env, "raw_dataset").output_for_node("raw_dataset").table()
    merged = before.merge(after, on="face_path")
    assert len(merged) == 80 and (merged["split_x"] == merged["split_y"]).all()


def test_appa_real_archive_on_disk(materialize: Materialize, appa_real_zip: Path) -> None:
    result = materialize({"AGE_ASSETS_DATASET": f"appa-real:{appa_real_zip}"}, DATA, SMALL)
    table = result.output_for_node("raw_dataset").table()
    assert table["split"].value_counts().to_dict() == {"train": 12, "valid": 6, "test": 6}
    schema = result.asset_materializations_for_node("raw_dataset")[0].metadata["dagster/column_schema"].value
    assert [column.name for column in schema.columns] == list(table.columns), "the schema names the manifest's columns"
    arrays: ImageSet = result.output_for_node("image_arrays")
    for split in arrays.splits:
        check_aligned(arrays, split)
    labels = arrays.labels("valid")
    assert np.allclose(labels["apparent_age_mean"] - labels["real_age"], 1.5)


def test_full_images_instead_of_face_crops(materialize: Materialize, appa_real_zip: Path) -> None:
    config = {"ops": {"image_arrays": {"config": {"image_size": 32, "crop": "full"}}}}
    result = materialize({"AGE_ASSETS_DATASET": f"appa-real:{appa_real_zip}"}, DATA, config)
    arrays: ImageSet = result.output_for_node("image_arrays")
    assert not arrays.labels("train")["image_path"].str.endswith("_face.jpg").any()
    check_aligned(arrays, "train")


def test_own_test_set_replaces_the_test_split(materialize: Materialize, appa_real_zip: Path, tmp_path: Path) -> None:
    write_utkface(tmp_path / "mine", n=7)
    env = {"AGE_ASSETS_DATASET": f"appa-real:{appa_real_zip}",
           "AGE_ASSETS_TEST_DATASET": f"utkface:{tmp_path / 'mine'}"}
    table = materialize(env, "raw_dataset").output_for_node("raw_dataset").table()
    test = table[table["split"] == "test"]
    assert len(test) == 7 and test["face_path"].str.contains("mine").all()
    assert (table["split"] == "train").sum() == 12


def test_an_empty_split_fails_the_asset(materialize: Materialize, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    write_utkface(folder, n=2)
    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{folder}"}, "raw_dataset", raise_on_error=False)
    assert not result.success
    assert "no images in split" in str(result.get_step_failure_events()[0].step_failure_data.error.message)


def test_missing_upstream_names_the_selection_that_builds_it(materialize: Materialize, utkface_dir: Path) -> None:
    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}, "augmented_train", raise_on_error=False)
    assert not result.success
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "image_arrays" in message and "dg launch --assets '*augmented_train'" in message
    assert "--select '*augmented_train'" in message


def test_undecodable_images_are_skipped_up_to_a_share(materialize: Materialize, utkface_dir: Path) -> None:
    broken = sorted(utkface_dir.iterdir())[:2]
    for path in broken:
        path.write_bytes(path.read_bytes()[:100])
    env = {"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}
    strict = materialize(env, DATA, SMALL, raise_on_error=False)
    assert not strict.success
    assert broken[0].name in str(strict.get_step_failure_events()[0].step_failure_data.error.message)
    lenient = {"ops": {"image_arrays": {"config": {"image_size": 32, "max_skipped_share": 0.05}}}}
    result = materialize(env, DATA, lenient)
    arrays: ImageSet = result.output_for_node("image_arrays")
    assert sum(len(arrays.labels(s)) for s in arrays.splits) == 78
    assert result.asset_materializations_for_node("image_arrays")[0].metadata["skipped"].value == 2
    skipped = pd.read_csv(arrays.folder / "skipped.csv")
    assert sorted(Path(p).name for p in skipped["path"]) == sorted(p.name for p in broken)
    for split in arrays.splits:
        check_aligned(arrays, split)


def test_a_folder_named_two_ways_is_the_same_dataset(
    materialize: Materialize, utkface_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = materialize({"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}, "raw_dataset")
    monkeypatch.chdir(utkface_dir / "..")
    relative = materialize({"AGE_ASSETS_DATASET": f"utkface:./x/../{utkface_dir.name}"}, "raw_dataset")
    assert relative.output_for_node("raw_dataset") == absolute.output_for_node("raw_dataset")
    assert relative.asset_materializations_for_node("raw_dataset")[0].metadata["reused"].value


def test_training_on_some_copies_takes_the_first_copies_of_each_image(
    materialize: Materialize, utkface_dir: Path
) -> None:
    from age_assets.assets.models import _stacks

    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}"}, ALL, SMALL)
    arrays, augmented = result.output_for_node("image_arrays"), result.output_for_node("augmented_train")
    labels = augmented.labels("train")

    def ages(table: pd.DataFrame) -> np.ndarray:
        return table["real_age"].to_numpy(np.float32)

    every, _, _ = _stacks(arrays, augmented, ages)
    two, _, evaluated = _stacks(arrays, augmented, ages, copies=2)
    assert every.rows is None and len(every.targets) == len(labels)
    assert set(labels["copy"].iloc[two.rows]) == {0, 1} and len(two.rows) == len(labels) // 2
    np.testing.assert_array_equal(two.targets, ages(labels.iloc[two.rows]))
    assert two.fingerprint != every.fingerprint, "features cached for some copies are not those for all"
    assert _stacks(arrays, augmented, ages, copies=4)[0].rows is None, "as many copies as there are: all"
    assert set(evaluated) >= {"valid", "test"}
