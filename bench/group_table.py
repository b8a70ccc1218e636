"""The ensemble's test figures per gender, race and age band, from a built graph's stored predictions.

Usage: python bench/group_table.py <data dir>
Reads the latest image_arrays and ensemble of the data dir and prints the table evaluation_report
gives (``ml.groups``). Labels built before the manifest carried gender and race get them from the
UTKFace file names, as ``raw_dataset`` now reads them; nothing is rebuilt or written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from age_assets.artifacts import Ensemble, ImageSet
from age_assets.datasets.utkface import groups_from_name
from age_assets.ml.groups import group_report, markdown_groups
from age_assets.storage import Pointer


def main(root: Path) -> None:
    handles = {}
    for asset, handle in (("image_arrays", ImageSet), ("ensemble", Ensemble)):
        pointer = Pointer.read(root, asset)
        if pointer is None:
            raise SystemExit(f"{root} holds no materialized {asset}")
        handles[asset] = handle(pointer.folder, pointer.fingerprint)
    labels = handles["image_arrays"].labels("test")
    if "race" not in labels:
        names = labels["face_path"].map(lambda p: groups_from_name(Path(p).name))
        labels["gender"], labels["race"] = names.str[0], names.str[1]
    pred = handles["ensemble"].predictions("test")["age"].to_numpy()
    print(f"ensemble {handles['ensemble'].fingerprint}, image_arrays {handles['image_arrays'].fingerprint}")
    print(markdown_groups(group_report(pred, labels)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
