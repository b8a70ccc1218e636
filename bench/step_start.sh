#!/usr/bin/env bash
# What starting the step processes costs: an unchanged rerun of the whole graph (every step finds its
# artifact, so a step is little more than its process starting) with each step a new interpreter
# (start_method spawn, Dagster's default) and forked from a process that imported the code location
# once (forkserver, the code's), alternated ROUNDS times; prints each time, the medians and their ratio.
# Usage: bench/step_start.sh DATA_DIR [ROUNDS]   (DATA_DIR: a finished bench/graph_on_utkface.sh run)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/utkface_env.sh "$1"
rounds=${2:-3}
declare -A seconds
for round in $(seq "$rounds"); do
  for method in spawn forkserver; do
    config=$(mktemp --suffix .yaml)
    echo "{\"execution\": {\"config\": {\"start_method\": \"$method\"}}}" > "$config"
    started=$(date +%s.%N)
    .venv/bin/dagster job execute -m age_assets -j best_cpu_graph -c "$config" > /dev/null 2>&1
    took=$(python3 -c "print(round($(date +%s.%N) - $started, 1))")
    echo "round $round, $method: $took s"
    seconds[$method]+="$took "
  done
done
python3 - "${seconds[spawn]}" "${seconds[forkserver]}" <<'PY'
import statistics, sys
spawn, fork = (statistics.median(map(float, s.split())) for s in sys.argv[1:])
print(f"median unchanged rerun: spawn {spawn:.1f} s, forkserver {fork:.1f} s, ratio {fork / spawn:.2f}x")
PY
