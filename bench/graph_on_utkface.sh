#!/usr/bin/env bash
# Run the whole graph on the shared UTKFace faces with a named configuration (best_cpu: the code's
# defaults; quick; gpu), then run it again with nothing changed; print both wall times and their
# ratio, per-asset time and memory, and the evaluation report (UTKFace test); then FG-NET's whole
# photos through what `predict` does with the run's export, beside the face head zero-shot
# (bench/photos_of_other_people.py; evaluation only). Give an empty or new data dir for a run from
# scratch. SEED=<n> trains every regressor and classifier with that seed (data and cached features
# are reused): run it after a first run to measure the noise of training.
# AGE_ASSETS_BACKBONES defaults to the code's default backbones.
# Usage: [SEED=1] bench/graph_on_utkface.sh [best_cpu|quick|gpu] [data dir]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-best_cpu}
source bench/utkface_env.sh "${2:-data}"
trained=$(for b in ${AGE_ASSETS_BACKBONES//,/ }; do echo "classifier_$b model_$b"; done)
assets="raw_dataset image_arrays augmented_train $trained ensemble bucket_ensemble evaluation_report exported_model"
seed_config=()
if [[ -n "${SEED:-}" ]]; then
  seed_file=$(mktemp --suffix .yaml)
  .venv/bin/python -c "
import json; from age_assets.configurations import run_config
print(json.dumps(run_config({'seed': $SEED}, '$AGE_ASSETS_BACKBONES'.split(','))))" > "$seed_file"
  seed_config=(-c "$seed_file")
fi

materialize() {
  local started=$(date +%s)
  /usr/bin/time -f "largest process %M KB" \
    .venv/bin/dagster job execute -m age_assets -j "${config}_graph" "${seed_config[@]}" 2>&1 |
    grep -E "largest process|RUN_SUCCESS|RUN_FAILURE|STEP_FAILURE|ASSET_CHECK_EVALUATION" || true
  echo $(( $(date +%s) - started ))
}
full=$(materialize | tee /dev/stderr | tail -1)
.venv/bin/python bench/materialization_table.py $assets
rerun=$(materialize | tee /dev/stderr | tail -1)
.venv/bin/python bench/materialization_table.py $assets
python3 -c "print(f'whole run {$full} s; rerun with nothing changed {$rerun} s = {100 * $rerun / $full:.1f}% of it')"
cat "$AGE_ASSETS_DATA_DIR/reports/evaluation.md"
fgnet=../shared/data/fgnet
if [[ -d $fgnet ]]; then
  echo "FG-NET's whole photos through predict (evaluation only):"
  .venv/bin/python bench/photos_of_other_people.py --data-dir "$AGE_ASSETS_DATA_DIR" --fgnet "$fgnet"
fi
