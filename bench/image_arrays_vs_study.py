"""image_arrays' decoder against the study's loop, on the same shared real faces in the same run.

Usage: python bench/image_arrays_vs_study.py [--faces ../shared/data/utkface] [--n 5000]
       [--repeats 2] [--memory-n 2000 20000]

Prints the best wall time of each over ``--repeats`` alternating runs and their ratio over ``--n``
faces, checks shape and dtype agree and states the pixel difference; then the peak resident memory
of each, measured in a fresh process, for every count in ``--memory-n``: ours should stay flat
while the study's grows with the count.
"""

from __future__ import annotations

import argparse
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
    """Peak RSS of a fresh process that runs one method over ``n`` faces.

    Read from VmHWM, which starts afresh with the new program; ``ru_maxrss`` would carry over the
    peak of this (forking) process.
    """
    code = (f"import json, re, shutil, sys, tempfile, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r});"
            f"import image_arrays_vs_study as b; paths = b.face_paths(pathlib.Path({str(folder)!r}), {n});"
            f"d = tempfile.mkdtemp(); b.METHODS[{method!r}](paths, pathlib.Path(d) / 'x.npy'); shutil.rmtree(d);"
            "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/utkface"))
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each method; the best counts")
    parser.add_argument("--memory-n", type=int, nargs="*", default=[2000, 20000])
    args = parser.parse_args()

    paths = face_paths(args.faces, args.n)
    for path in paths:  # both methods then read from the page cache
        Path(path).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        seconds: dict[str, float] = {}
        stacks = {}
        for _ in range(args.repeats):  # alternate, keep each method's best: the machine is shared
            for name in ("study", "ours"):
                out = Path(tmp) / f"{name}.npy"
                started = time.perf_counter()
                METHODS[name](paths, out)
                seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - started)
        stacks = {name: np.load(Path(tmp) / f"{name}.npy", mmap_mode="r") for name in METHODS}
        a, b = stacks["study"], stacks["ours"]
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        print(f"{args.n} faces at {SIZE} px, best of {args.repeats}: study {seconds['study']:.1f} s, "
              f"ours {seconds['ours']:.1f} s, "
              f"speed-up {seconds['study'] / seconds['ours']:.2f}x")
        print(f"same shape {a.shape} and dtype {a.dtype}; pixel difference: mean {diff.mean():.2f}, "
              f"99th percentile {np.percentile(diff, 99):.0f}, max {diff.max()} (of 255)")
    print("| faces | study peak RSS (MB) | ours peak RSS (MB) |\n|---|---|---|")
    for n in args.memory_n:
        print(f"| {n} | {peak_rss_mb('study', args.faces, n):.0f} | {peak_rss_mb('ours', args.faces, n):.0f} |")


if __name__ == "__main__":
    main()
