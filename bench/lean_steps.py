"""Step processes of the code before and after a change: the data steps' time and peak memory, the
unchanged rerun, and the code location's load time.

Usage: python bench/lean_steps.py [--before /tmp/lean-before] [--ref HEAD] [--faces ../shared/data/utkface]
       [--n 1000] [--repeats 3]

"before" is a git worktree of ``--ref`` (made with ``git worktree add --detach`` where the folder
does not exist yet), "after" this working tree; both run with this interpreter and ``PYTHONPATH``
pointing at their tree. ``raw_dataset,image_arrays`` are materialized with ``dagster asset
materialize`` on ``--n`` UTKFace faces copied to a temporary folder, then materialized again with
nothing changed (every step reuses its artifact). Runs alternate between the two trees; every
figure is a median over ``--repeats``.

Each Python process started under a measurement records its lifetime and peak resident memory at
exit, through a ``sitecustomize`` hook. The peak is VmHWM, which starts afresh with each new
program; ``ru_maxrss`` would carry the peak of the process that spawned it across fork and exec.
The first ``dagster`` process is the run; the others are its step processes, which
multiprocessing spawned with the same ``argv``, in order of start (each step waits for the one before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECTION = ["raw_dataset", "image_arrays"]
STEPS = [*SELECTION, "image_arrays_are_sound"]
"""The step processes of the selection, in order: the two assets, then the check on image_arrays."""
HOOK = """
import atexit, json, os, re, sys, time

_log, _started = os.environ.get("LEAN_STEPS_LOG"), time.time()


def _record() -> None:
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    package = sys.modules.get("age_assets")
    with open(_log, "a") as log:
        log.write(json.dumps({"argv": sys.argv, "started": _started, "seconds": time.time() - _started,
                              "peak_mb": peak_kb / 1024, "tensorflow": "tensorflow" in sys.modules,
                              "package": getattr(package, "__file__", None)}) + "\\n")


if _log:
    atexit.register(_record)
"""


def worktree(path: Path, ref: str) -> Path:
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                       capture_output=True)
    return path


def face_subset(faces: Path, n: int, into: Path) -> Path:
    """Every k-th image of ``faces``, ``n`` in all, copied into ``into``."""
    paths = sorted(p for p in faces.iterdir() if p.name.lower().endswith((".jpg", ".png")))
    if len(paths) < n:
        raise SystemExit(f"{faces} holds {len(paths)} images, fewer than the {n} asked for")
    into.mkdir(parents=True)
    for path in paths[::len(paths) // n][:n]:
        shutil.copy(path, into / path.name)
    return into


def measured(command: list[str], tree: Path, hook: Path, env: dict[str, str]) -> tuple[float, list[dict]]:
    """Wall seconds of ``command`` run in ``tree``, and the exit records of its Python processes."""
    handle, name = tempfile.mkstemp(suffix=".jsonl")
    os.close(handle)
    log = Path(name)
    env = {**os.environ, **env, "PYTHONPATH": f"{hook}:{tree}", "LEAN_STEPS_LOG": str(log)}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} in {tree} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    wrong = {r["package"] for r in records if r["package"] and not r["package"].startswith(str(tree))}
    if wrong:
        raise SystemExit(f"measuring {tree} imported age_assets from {wrong}")
    return seconds, records


def reused(home: Path) -> list[bool]:
    """Whether the latest materialization of each selected asset found its artifact stored."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        events = [instance.get_latest_materialization_event(dg.AssetKey(name)) for name in SELECTION]
    return [bool(e and e.asset_materialization.metadata["reused"].value) for e in events]


def materialize(tree: Path, hook: Path, env: dict[str, str]) -> dict[str, float | bool]:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "age_assets",
               "--select", ",".join(SELECTION)]
    seconds, records = measured(command, tree, hook, env)
    run, *steps = sorted((r for r in records if r["argv"][0].endswith("dagster")), key=lambda r: r["started"])
    if len(steps) != len(STEPS):
        raise SystemExit(f"expected {len(STEPS)} step processes, found {len(steps)}")
    figures: dict[str, float | bool] = {"wall s": seconds, "run process MB": run["peak_mb"]}
    for name, step in zip(STEPS, steps):
        figures |= {f"{name} step s": step["seconds"], f"{name} step MB": step["peak_mb"],
                    f"{name} step imports tensorflow": step["tensorflow"]}
    return figures


def load(tree: Path, hook: Path, env: dict[str, str]) -> dict[str, float | bool]:
    seconds, records = measured([sys.executable, "-c", "import age_assets.definitions"], tree, hook, env)
    return {"wall s": seconds, "peak MB": records[0]["peak_mb"], "imports tensorflow": records[0]["tensorflow"]}


def one_round(tree: Path, hook: Path, faces: Path, work: Path) -> dict[str, dict[str, float | bool]]:
    """A fresh materialization of the data steps, the unchanged rerun, and a code-location load."""
    home = work / "dagster"
    home.mkdir(parents=True)
    shutil.copy(tree / "data" / "dagster" / "dagster.yaml", home)
    env = {"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_DATA_DIR": str(work / "data"),
           "DAGSTER_HOME": str(home)}
    fresh = materialize(tree, hook, env)
    rerun = materialize(tree, hook, env)
    if not all(reused(home)):
        raise SystemExit(f"the rerun in {work} rebuilt an asset")
    return {"fresh run": fresh, "unchanged rerun": rerun, "code location load": load(tree, hook, env)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/tmp/lean-before"))
    parser.add_argument("--ref", default="HEAD", help="commit of the 'before' worktree, where it is made")
    parser.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "utkface")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": worktree(args.before, args.ref), "after": ROOT}
    for label, tree in trees.items():
        commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = "" if label == "before" else " + working tree"
        print(f"{label}: {tree} ({commit}{dirty})")
    with tempfile.TemporaryDirectory(prefix="lean-steps-") as scratch:
        work = Path(scratch)
        (work / "hook").mkdir()
        (work / "hook" / "sitecustomize.py").write_text(HOOK)
        faces = face_subset(args.faces, args.n, work / "faces")
        runs: dict[str, list[dict[str, dict[str, float | bool]]]] = {label: [] for label in trees}
        for repeat in range(args.repeats):
            for label, tree in trees.items():
                runs[label].append(one_round(tree, work / "hook", faces, work / f"{label}-{repeat}"))
                print(f"repeat {repeat + 1}/{args.repeats} {label} done", file=sys.stderr, flush=True)
    print(f"\n{args.n} faces, median of {args.repeats} alternating runs")
    print(f"{'':48} {'before':>9} {'after':>9} {'after/before':>13}")
    for part, figures in runs["before"][0].items():
        print(part)
        for figure, value in figures.items():
            if isinstance(value, bool):
                before, after = ("yes" if any(r[part][figure] for r in runs[label]) else "no" for label in trees)
                print(f"  {figure:46} {before:>9} {after:>9}")
                continue
            before, after = (statistics.median(r[part][figure] for r in runs[label]) for label in trees)
            print(f"  {figure:46} {before:9.1f} {after:9.1f} {after / before:13.2f}")


if __name__ == "__main__":
    main()
