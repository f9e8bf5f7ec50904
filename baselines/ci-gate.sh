#!/usr/bin/env bash
# mribench gates itself: a fast subset of the embedded baselines is re-evaluated on MRIBench-Sim
# and compared slice by slice with the committed reference runs (baselines/reference-runs/).
# Regenerate a reference (after an intended change) with the command in its "regenerate" line below.
#
# No --max-drop: every metric is allowed exactly its float tolerance (part of the metric's
# definition, `mribench metrics explain ssim`), so another CPU or BLAS passes and any real change
# of a number fails: exit 1 (a regression) or 3 (inconclusive: a change the check cannot size).
set -euo pipefail
cd "$(dirname "$0")/.."
refs=baselines/reference-runs
status=0
for ref in "$refs"/*.json; do
  name=$(basename "$ref" .json)          # <model>@<task>
  model=${name%@*}
  task=${name#*@}
  echo "-- $model on $task (regenerate: mribench evaluate -m $model -t $task --limit 8 --threads 1 -o $ref)"
  mribench check --reference "$ref" --model "$model" --task "$task" --device cpu \
    --run-dir "mribench-runs/ci-gate/$name" --junit "mribench-runs/ci-gate/$name.xml" || status=$?
done
exit $status
