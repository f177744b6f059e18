#!/usr/bin/env bash
# A/B of training options at equal wall time: runs side by side, one thread each, same load.
# usage: runs/ab.sh SECONDS PRESET "name:overrides" ...
cd "$(dirname "$0")/.."
T=$1; PRESET=$2; shift 2
for spec in "$@"; do
  name=${spec%%:*}; extra=${spec#*:}
  .venv/bin/python -m train $PRESET max_iters=1000000 max_time=$T threads=1 snapshots= progress=false \
    eval_interval=100 eval_iters=20 out=runs/ab/$name $extra > runs/ab_$name.log 2>&1 &
done
wait
