#!/usr/bin/env bash
# The mribench regression-gate recipe: the one place that holds the gate's sizes and allowed drops.
# The README ("Regression gate for your CI") and examples/ci/github-actions.yml both run this script.
#
#   MODEL=my_model.py:build bash examples/ci/gate.sh reference   # once, from a trusted commit; commit the file
#   MODEL=my_model.py:build bash examples/ci/gate.sh check       # on every change
#
# Exit status of `check`: 0 pass, 1 regression (a metric worse than allowed, or failed slices),
# 2 misuse (the runs cannot be compared: another task, split, mask, metric definition, options,
# missing slices; bad arguments), 3 inconclusive (too few volumes to tell; it says how many would).
#
# Sizes: every volume of the task's test splits (on the embedded benchmark's anatomy task: 6 ID and
# 15 OOD volumes, 65 slices; a zero-filled run takes seconds on a CPU). Measured there (noise-like
# changes of zero-filled): drops near the allowed SSIM 0.002 are resolved to about +-0.0006, so the
# gate detects its own allowed drop; a candidate equal up to 1e-6 passes (float tolerance), a 0.01
# SSIM drop fails. For a slow model on a large task, add `--until-decided` to the check (volumes are
# evaluated in rounds until every comparison is decided), or set LIMIT (volumes per split).
#
# Settings (environment): MODEL (required), TASK (default anatomy), REFERENCE (default
# mribench-reference/$TASK.json), LIMIT (default: all volumes), OUT (JUnit/Markdown prefix, default
# mribench-$TASK), MRIBENCH_DATA (data root, default the embedded benchmark); extra arguments go to
# mribench (e.g. --device cpu --threads 2).
set -euo pipefail

: "${MODEL:?set MODEL to your model, e.g. MODEL=my_model.py:build}"
TASK=${TASK:-anatomy}
REFERENCE=${REFERENCE:-mribench-reference/$(basename "${TASK%.yaml}").json}
OUT=${OUT:-mribench-$(basename "${TASK%.yaml}")}
METRICS=ssim,psnr                                   # what the gate compares
MAX_DROP=(--max-drop ssim=0.002 --max-drop psnr=0.1)  # allowed degradation (others: their float tolerance)
LIMIT_ARGS=()
if [ -n "${LIMIT:-}" ]; then LIMIT_ARGS=(--limit "$LIMIT"); fi

cmd=${1:-}
shift || true
case "$cmd" in
  reference)
    mkdir -p "$(dirname "$REFERENCE")"
    mribench evaluate -m "$MODEL" -t "$TASK" --metrics "$METRICS" "${LIMIT_ARGS[@]}" \
      --run-dir "mribench-runs/gate-reference/$(basename "${TASK%.yaml}")" --overwrite -o "$REFERENCE" "$@"
    ;;
  check)
    mribench check --reference "$REFERENCE" --model "$MODEL" "${MAX_DROP[@]}" \
      --run-dir "mribench-runs/gate/$(basename "${TASK%.yaml}")" \
      --junit "$OUT.xml" --markdown "$OUT.md" "$@"
    ;;
  *)
    echo "usage: MODEL=SPEC bash $0 reference|check [mribench options]" >&2
    exit 2
    ;;
esac
