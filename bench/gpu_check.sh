#!/usr/bin/env bash
# The gpu_graph job's training step on a GPU: whether TensorFlow trained on it, the last epoch's
# time on the GPU (mixed precision off and on) against the same on the CPU, and peak GPU memory.
# At most 8 minutes; stops at once, exit 2, where no GPU is usable. Run from a checkout with the
# environment set up (make setup), on a machine with ../shared:
#   bench/gpu_check.sh [faces, default 3000] [epochs, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
faces=${1:-3000}
epochs=${2:-2}
deadline=$(( $(date +%s) + 470 ))

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or finds no device); nothing run" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! "$PYTHON" -c "import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices('GPU'))" 2>/dev/null; then
    echo "gpu_check: nvidia-smi sees a GPU but TensorFlow does not: install the GPU build" \
         "(pip install -c requirements/constraints.txt 'tensorflow[and-cuda]') or check CUDA_VISIBLE_DEVICES" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DAGSTER_HOME=$work/dagster AGE_ASSETS_WEIGHTS_DIR=${AGE_ASSETS_WEIGHTS_DIR:-../shared/weights}
mkdir -p "$DAGSTER_HOME"
left() { echo $(( deadline - $(date +%s) )); }
timeout "$(left)" "$PYTHON" bench/gpu_check.py prepare "$work/data" "$work/faces" ../shared/data/utkface "$faces"

results=$work/results.jsonl
run() {  # run SEED [--mixed-precision]; CUDA_VISIBLE_DEVICES= in the environment trains on the CPU
    (( $(left) > 10 )) || { echo "gpu_check: out of time before seed $1 $*" >&2; return 0; }
    timeout "$(left)" "$PYTHON" bench/gpu_check.py train "$work/data" "$work/faces" "$epochs" "$@" | tail -1 | tee -a "$results" \
        || echo "gpu_check: the run '$*' failed or ran out of time" >&2
}
run 1
run 2 --mixed-precision
CUDA_VISIBLE_DEVICES= run 3

"$PYTHON" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
by = {("GPU" in r["device"], r["mixed_precision"]): r for r in rows}
fp32, mixed, cpu = by.get((True, False)), by.get((True, True)), by.get((False, False))
print(f"{'setting':<22}{'device':<44}{'last epoch s':>13}{'peak GPU MB':>13}")
for name, r in (("GPU float32", fp32), ("GPU mixed precision", mixed), ("CPU", cpu)):
    if r:
        print(f"{name:<22}{r['device']:<44}{r['last_epoch_s'] or '-':>13}{r['peak_gpu_memory_mb']:>13}")
def ratio(a, b):
    return f"{a['last_epoch_s'] / b['last_epoch_s']:.2f}x" if a and b and a["last_epoch_s"] and b["last_epoch_s"] else "-"
print(f"trained on the GPU: {'yes' if fp32 and 'GPU' in fp32['device'] and fp32['peak_gpu_memory_mb'] > 0 else 'NO'}")
print(f"epoch time, GPU float32 / CPU: {ratio(fp32, cpu)}; mixed precision / float32: {ratio(mixed, fp32)}")
PY
