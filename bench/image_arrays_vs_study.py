"""image_arrays' decoder against the study's loop, on the same shared real faces in the same run.

Usage: python bench/image_arrays_vs_study.py [--faces ../shared/data/utkface] [--n 5000]
       [--memory-n 2000 20000]

Prints wall time of each and their ratio over ``--n`` faces, checks shape and dtype agree and
states the pixel difference; then the peak resident memory of each, measured in a fresh process,
for every count in ``--memory-n``: ours should stay flat while the study's grows with the count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from age_assets.ml.images import write_image_stack

SIZE = 224


def study_loop(paths: list[str], out: Path) -> None:
    """The study's preprocessing: every image resized into a list, then one np.save."""
    images = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize((SIZE, SIZE))
        images.append(np.array(image))
    np.save(out, np.array(images))


def ours(paths: list[str], out: Path) -> None:
    write_image_stack(paths, out, SIZE)


METHODS = {"study": study_loop, "ours": ours}


def face_paths(folder: Path, n: int) -> list[str]:
    paths = sorted(str(p) for p in folder.iterdir() if p.name.lower().endswith((".jpg", ".png")))
    if len(paths) < n:
        raise SystemExit(f"{folder} holds {len(paths)} images, fewer than the {n} asked for")
    return paths[:n]


def peak_rss_mb(method: str, folder: Path, n: int) -> float:
    """Peak RSS of a fresh process that runs one method over ``n`` faces."""
    code = (f"import json, resource, sys, tempfile, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r});"
            f"import image_arrays_vs_study as b; paths = b.face_paths(pathlib.Path({str(folder)!r}), {n});"
            f"d = tempfile.mkdtemp(); b.METHODS[{method!r}](paths, pathlib.Path(d) / 'x.npy');"
            "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/utkface"))
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--memory-n", type=int, nargs="*", default=[2000, 20000])
    args = parser.parse_args()

    paths = face_paths(args.faces, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        seconds, stacks = {}, {}
        for name in ("study", "ours"):
            out = Path(tmp) / f"{name}.npy"
            started = time.perf_counter()
            METHODS[name](paths, out)
            seconds[name] = time.perf_counter() - started
            stacks[name] = np.load(out, mmap_mode="r")
        a, b = stacks["study"], stacks["ours"]
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        print(f"{args.n} faces at {SIZE} px: study {seconds['study']:.1f} s, ours {seconds['ours']:.1f} s, "
              f"speed-up {seconds['study'] / seconds['ours']:.2f}x")
        print(f"same shape {a.shape} and dtype {a.dtype}; pixel difference: mean {diff.mean():.2f}, "
              f"99th percentile {np.percentile(diff, 99):.0f}, max {diff.max()} (of 255)")
    print("| faces | study peak RSS (MB) | ours peak RSS (MB) |\n|---|---|---|")
    for n in args.memory_n:
        print(f"| {n} | {peak_rss_mb('study', args.faces, n):.0f} | {peak_rss_mb('ours', args.faces, n):.0f} |")


if __name__ == "__main__":
    main()
