#!/usr/bin/env bash
# The GPU benchmark pass, as run through the device tool on a lent GPU machine (its python3
# holds a CUDA PyTorch; the project's other packages travel as wheels in .whl/, and a subset
# of ../shared/data travels as .gpudata/). Writes each benchmark's JSON into $OUT (or ./gpu-out).
#   bash benchmarks/gpu_run.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
if [ -d .gpudata ] && [ ! -e ../shared/data ]; then mkdir -p ../shared && ln -s "$PWD/.gpudata" ../shared/data; fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; echo "$(nproc) CPU cores"
  python3 -c "import torch, open_clip, faiss; print('torch', torch.__version__, 'open_clip', open_clip.__version__, 'faiss', faiss.__version__)"; } | tee "$OUT/machine.txt"
run() {  # name, command...
    local name=$1; shift
    echo "== $name: $*"
    timeout ${BENCH_TIMEOUT:-150} python3 "$@" --json > "$OUT/$name.log" 2>&1; echo "exit $?" >> "$OUT/$name.log"
    tail -n 3 "$OUT/$name.log" | cut -c1-600
}
run embed_vitb32_camvid benchmarks/embed_throughput.py --device cuda --backbone vit-b-32-random --source camvid --images 48 --repeats 6
run embed_vitb32_camvid_inproc benchmarks/embed_throughput.py --device cuda --backbone vit-b-32-random --source camvid --images 48 --repeats 6 --num-workers 0
run embed_vitb32_ade20k benchmarks/embed_throughput.py --device cuda --backbone vit-b-32-random --source ade20k --images 33 --repeats 8
run embed_vitb16_camvid benchmarks/embed_throughput.py --device cuda --backbone vit-b-16-random --source camvid --images 48 --repeats 6
[ -n "${LATENCY-1}" ] && run latency_vitb32 benchmarks/worker_latency.py --device cuda --backbone vit-b-32-random --runs 10
[ -n "${LATENCY-1}" ] && run latency_vitb16 benchmarks/worker_latency.py --device cuda --backbone vit-b-16-random --runs 10
