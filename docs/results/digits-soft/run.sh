#!/usr/bin/env bash
# Reruns the digits soft-label study of docs/results/digits-soft.md into /tmp/ddray-digits-soft.
#   bash docs/results/digits-soft/run.sh                # IPC 1, every variant below
#   IPC=10 bash docs/results/digits-soft/run.sh t1-e300-c50       # the IPC-10 slice of the study
# Every `ddray run` is idempotent: a rerun only trains what its store does not hold yet.
# Runs pinned to one core at low priority (the machine is shared); about 45 min wall for IPC 1
# and 10 for the IPC-10 slice on a busy 2-core box (every other user's load included).
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-/work/main/.venv/bin/python}
IPC=${IPC:-1}
DIR=docs/results/digits-soft
OUT=/tmp/ddray-digits-soft
ddray() { PYTHONPATH=$PWD nice -n 10 taskset -c 1 "$PY" -m ddray.cli "$@"; }

# The two teachers, trained once and loaded by every variant (their full-data trial keys are fixed).
teacher() {  # spec, trial key, file
  [ -f "$OUT/$3" ] && return
  ddray run "$DIR/$1.yaml" --no-progress
  cp "$OUT/$1/artifacts/teachers/$2/weights.pt" "$OUT/$3"
}
mkdir -p "$OUT"
teacher teacher 3641785e6e8ae8c7 teacher.pt          # = the quickstart's teacher (same key)
teacher teacher-aug 5701e4411fdcb882 teacher-aug.pt  # trained on RandomResizedCrop(0.08, 1)

VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(
  t1-e100-c50 t1-e100-c08 t4-e100-c50 t4-e100-c08 t20-e100-c50 t20-e100-c08
  taug-t1-e100-c50 taug-t1-e100-c08 taug-t4-e100-c50 taug-t20-e100-c50
  t1-e300-c50 t20-e300-c50 taug-t1-e300-c50
)
for v in "${VARIANTS[@]}"; do
  ddray run "$DIR/$v.yaml" --only "ipc=$IPC" --no-progress
  ddray report "$OUT/$v" --format md > "$OUT/$v.md"
done
