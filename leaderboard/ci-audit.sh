#!/usr/bin/env bash
# CI audit of the shipped leaderboard: re-evaluate a small random sample of every evaluated entry's
# slices (whole volumes, drawn now) with the entry's model and compare them slice by slice within
# each metric's tolerance. Nothing is written (--no-record); exit 1 when an entry does not reproduce.
# The shipped entries' models are registered names (their `model.architecture`).
set -euo pipefail
cd "$(dirname "$0")/.."
FRACTION=${FRACTION:-0.2}   # of each split's volumes, at least one: a few seconds per entry on a CPU
status=0
for entry in leaderboard/entries/*/*.json; do
  model=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["architecture"])' "$entry")
  mribench leaderboard audit "$entry" --model "$model" --fraction "$FRACTION" --device cpu --threads 1 \
    --run-dir "mribench-runs/ci-audit/$(basename "$entry" .json)" --no-record || status=$?
done
exit $status
