"""Print a markdown table of the latest materialization of each asset in a Dagster instance.

Usage: DAGSTER_HOME=<dir> python bench/materialization_table.py [asset ...]
Reads the build's time and peak memory (kept when an artifact is reused, beside the reuse's own time), size on
disk, images and validation scores from the metadata each asset records.
"""

import sys

import dagster as dg

COLUMNS = ("build_seconds", "build_peak_rss_mb", "reuse_seconds", "size_mb", "train_images", "epochs", "val_mae",
           "val_accuracy", "reused")


def main(assets: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    print("| asset | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name in assets:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        if event is None:
            print(f"| {name} | not materialized |")
            continue
        metadata = event.asset_materialization.metadata
        cells = []
        for column in COLUMNS:
            value = metadata[column].value if column in metadata else ""
            cells.append(str(value))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["raw_dataset", "image_arrays", "augmented_train"])
