# Sourced by the whole-graph benches: the shared UTKFace faces and weights, the code's default
# backbones (unless AGE_ASSETS_BACKBONES is set), and a Dagster instance inside the data dir ($1).
export AGE_ASSETS_DATA_DIR=${1:-data}
export AGE_ASSETS_DATASET=utkface:../shared/data/utkface
defaults=$(.venv/bin/python -c "from age_assets.definitions import DEFAULT_BACKBONES; print(DEFAULT_BACKBONES)")
export AGE_ASSETS_BACKBONES=${AGE_ASSETS_BACKBONES:-$defaults}
export AGE_ASSETS_WEIGHTS_DIR=../shared/weights
export DAGSTER_HOME=$(realpath -m "$AGE_ASSETS_DATA_DIR")/dagster
mkdir -p "$DAGSTER_HOME" && cp -n data/dagster/dagster.yaml "$DAGSTER_HOME/" 2>/dev/null || true
