#!/usr/bin/env bash
# Train the small rungs of the ladder one after another, one thread each (logs in runs/).
cd "$(dirname "$0")/.."
mkdir -p runs
for p in "${@:-bigram single_head multi_head blocks}"; do
  for name in $p; do .venv/bin/python -m train $name threads=1 progress=false out=checkpoints/$name > runs/$name.log 2>&1; done
done
