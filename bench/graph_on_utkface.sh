#!/usr/bin/env bash
# Run the whole graph on the shared UTKFace faces with a config from bench/configs, then run it
# again with nothing changed; print both wall times and their ratio, per-asset time and memory,
# and the evaluation report.
# Usage: bench/graph_on_utkface.sh [quick|best] [data dir]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-quick}
export AGE_ASSETS_DATA_DIR=${2:-data}
export AGE_ASSETS_DATASET=utkface:../shared/data/utkface
export AGE_ASSETS_BACKBONES=mobilenet_v3_small,mobilenet_v2
export AGE_ASSETS_WEIGHTS_DIR=../shared/weights
export DAGSTER_HOME=$(realpath -m "$AGE_ASSETS_DATA_DIR")/dagster
mkdir -p "$DAGSTER_HOME" && cp -n data/dagster/dagster.yaml "$DAGSTER_HOME/" 2>/dev/null || true
assets="raw_dataset image_arrays augmented_train model_mobilenet_v3_small model_mobilenet_v2
  classifier_mobilenet_v3_small classifier_mobilenet_v2 ensemble bucket_ensemble evaluation_report"

materialize() {
  local started=$(date +%s)
  /usr/bin/time -f "largest process %M KB" \
    .venv/bin/dagster asset materialize -m age_assets --select '*' -c "bench/configs/$config.yaml" 2>&1 |
    grep -E "largest process|RUN_SUCCESS|RUN_FAILURE|STEP_FAILURE" || true
  echo $(( $(date +%s) - started ))
}
full=$(materialize | tee /dev/stderr | tail -1)
.venv/bin/python bench/materialization_table.py $assets
rerun=$(materialize | tee /dev/stderr | tail -1)
.venv/bin/python bench/materialization_table.py $assets
python3 -c "print(f'whole run {$full} s; rerun with nothing changed {$rerun} s = {100 * $rerun / $full:.1f}% of it')"
cat "$AGE_ASSETS_DATA_DIR/reports/evaluation.md"
