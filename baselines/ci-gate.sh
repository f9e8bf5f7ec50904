#!/usr/bin/env bash
# mribench gates itself: a fast subset of the embedded baselines is re-evaluated on MRIBench-Sim
# and compared slice by slice with the committed reference runs (baselines/reference-runs/).
# Regenerate a reference (after an intended change) with the command in its "regenerate" line below.
set -euo pipefail
cd "$(dirname "$0")/.."
refs=baselines/reference-runs
status=0
for ref in "$refs"/*.json; do
  name=$(basename "$ref" .json)          # <model>@<task>
  model=${name%@*}
  task=${name#*@}
  echo "-- $model on $task (regenerate: mribench evaluate -m $model -t $task --limit 24 -o $ref)"
  # Allowed drops absorb floating-point differences between CPUs, nothing a real change stays under.
  mribench check --reference "$ref" --model "$model" --task "$task" --device cpu \
    --max-drop ssim_d22=1e-4 --max-drop ssim=1e-4 --max-drop psnr=0.01 --max-drop nmse=1e-5 \
    --run-dir "mribench-runs/ci-gate/$name" --junit "mribench-runs/ci-gate/$name.xml" || status=$?
done
exit $status
