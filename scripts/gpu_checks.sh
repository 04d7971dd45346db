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
# The streamed path on CUDA (issue: real-world datasets): decode throughput with 0/1/2 CPU workers
# and GPU decode_jpeg, and one SSR and CE epoch each, on generated ANIMAL-10N and Clothing1M trees.
python scripts/realworld_tree.py animal10n /tmp/animal10n --per-class 2000 > /dev/null
python scripts/realworld_tree.py clothing1m /tmp/clothing1m --per-class 150 --scale 8 > /dev/null
python run_bench.py perf benchmarks/perf_streamed.yaml --device cuda --set dataset.root=/tmp/animal10n \
    --stream-workers 0,1,2 --images 10000 --out "$OUT" 2>&1 | tee "$OUT/stream_animal10n.log"
python run_bench.py perf benchmarks/perf_streamed.yaml --device cuda --set dataset.name=clothing1m \
    --set dataset.root=/tmp/clothing1m --set 'dataset.options={}' --stream-workers 0,1,2 \
    --images 2000 --batch-size 32 --out "$OUT" 2>&1 | tee "$OUT/stream_clothing1m.log"
python run_bench.py perf benchmarks/perf_streamed.yaml --device cuda --epochs 2 \
    --set dataset.root=/tmp/animal10n --set engine.neighbour_backend=torch --out "$OUT" \
    2>&1 | tee "$OUT/stream_epochs.log"
