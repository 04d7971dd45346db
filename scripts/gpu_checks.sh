#!/usr/bin/env bash
# Every GPU check in one call: the perf table (plain vs fast path, concurrency) and the fast-vs-plain
# accuracy check of benchmarks/fastpath_accuracy.yaml (its header says how to build its input,
# device_data/cifar10_subset.npz). On a machine without nlbench's dependencies, put their wheels
# in .whl/ (pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions, tqdm):
# they are installed to /tmp/site first. Without faiss the neighbour index uses its exact torch
# backend. Tables and logs go under $OUT (default reports/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python run_bench.py perf benchmarks/perf_cifar10.yaml --epochs 3 --compare --concurrency 1,2,4 --device cuda \
    --set engine.neighbour_backend=torch --out "$OUT" 2>&1 | tee "$OUT/perf.log"
for path in fast plain; do
  extra=()
  if [ "$path" = plain ]; then
    extra=(--set engine.amp=false --set engine.channels_last=false --set engine.cudnn_benchmark=false)
  fi
  python run_bench.py run benchmarks/fastpath_accuracy.yaml --device cuda --no-progress \
      --set engine.neighbour_backend=torch --set "results_dir=$OUT/results_$path" \
      --set "reports_dir=$OUT/reports_$path" "${extra[@]}" 2>&1 | tee "$OUT/accuracy_$path.log"
done
