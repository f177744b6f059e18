#!/usr/bin/env bash
# Train the small rungs of the ladder one after another (logs in runs/).
cd "$(dirname "$0")/.."
export GPTLAB_DATA_DIR=/work/shared/data
for p in bigram single_head multi_head blocks; do
  .venv/bin/python -m train $p progress=false > runs/$p.log 2>&1
done
