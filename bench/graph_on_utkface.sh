#!/usr/bin/env bash
# Run the whole graph on the shared UTKFace faces with a config from bench/configs, then print
# per-asset time and memory and the evaluation report.
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
/usr/bin/time -f "whole run: %e s wall, largest process %M KB" \
  .venv/bin/dagster asset materialize -m age_assets --select '*' -c "bench/configs/$config.yaml"
.venv/bin/python bench/materialization_table.py raw_dataset image_arrays augmented_train \
  model_mobilenet_v3_small model_mobilenet_v2 classifier_mobilenet_v3_small classifier_mobilenet_v2 \
  ensemble evaluation_report
cat "$AGE_ASSETS_DATA_DIR/reports/evaluation.md"
