"""exports_agree_with_keras on an unchanged export: the first run against a rerun that reuses its verdict.

    python bench/export_check_reuse.py DATA_DIR

Copies DATA_DIR's current export into a scratch folder (DATA_DIR is only read), runs the check on
it twice against DATA_DIR's validation split and prints both times and their ratio.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from age_assets.artifacts import Export, ImageSet
from age_assets.assets.export import exports_agree_with_keras
from age_assets.storage import Pointer


def main(data_dir: str) -> None:
    export, images = Pointer.read(Path(data_dir), "exported_model"), Pointer.read(Path(data_dir), "image_arrays")
    if export is None or images is None:
        raise SystemExit(f"{data_dir}: needs exported_model and image_arrays")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / export.fingerprint
        shutil.copytree(export.folder, copy, ignore=shutil.ignore_patterns("agreement.json"))
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            result = exports_agree_with_keras(ImageSet(images.folder, images.fingerprint),
                                              Export(copy, export.fingerprint))
            seconds.append(time.perf_counter() - started)
            print(f"passed={result.passed} reused={result.metadata['reused'].value} {seconds[-1]:.2f} s", flush=True)
    print(f"rerun / first run: {seconds[1] / seconds[0]:.4f} ({len(ImageSet(images.folder, '').labels('valid'))} "
          f"validation faces)")


if __name__ == "__main__":
    main(sys.argv[1])
