#!/usr/bin/env bash
# The GPU benchmark pass, as run through the device tool on a lent GPU machine (its python3
# holds a CUDA PyTorch; the project's other packages travel as wheels in .whl/, and a subset
# of ../shared/data travels as .gpudata/). Writes machine.txt, all.log (every run's output) and results.jsonl (each run's --json line,
# named by "run") into $OUT (or ./gpu-out): the device tool brings back at most 8 files.
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
run() {  # name, command...: the whole output appended to all.log, the --json line to results.jsonl
    local name=$1; shift
    if [ -n "${ONLY-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi  # ONLY="name ...": just those
    echo "== $name: $*" | tee -a "$OUT/all.log"
    timeout ${BENCH_TIMEOUT:-100} python3 "$@" --json > "$OUT/run.log" 2>&1; local rc=$?
    pkill -9 -f "[m]ultiprocessing.forkserver" 2>/dev/null  # workers a timed-out run left behind would load the next
    cat "$OUT/run.log" >> "$OUT/all.log"; echo "exit $rc" | tee -a "$OUT/all.log"
    tail -n 1 "$OUT/run.log" | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['run']='$name'; print(json.dumps(r, sort_keys=True))" >> "$OUT/results.jsonl" 2>/dev/null
    tail -n 2 "$OUT/run.log" | head -n 1 | cut -c1-400; rm -f "$OUT/run.log"
}
E="benchmarks/embed_throughput.py --device cuda --rounds 2"
L="benchmarks/worker_latency.py --device cuda --runs 10"
# Most telling first: DataLoader workers 4 (auto_workers' cap), 8 and cores - 1 on CamVid PNGs.
run embed_vitb32_camvid $E --backbone vit-b-32-random --source camvid --images 48 --repeats 6
run embed_vitb32_camvid_w8 $E --backbone vit-b-32-random --source camvid --images 48 --repeats 6 --num-workers 8
run embed_vitb32_camvid_w15 $E --backbone vit-b-32-random --source camvid --images 48 --repeats 6 --num-workers 15
# The worker on the index publishing picks for an 80 MB budget, then on a flat index.
run latency_vitb32_budget80 $L --backbone vit-b-32-random --budget-mb 80
run latency_vitb32_flat $L --backbone vit-b-32-random
run gpu_decode benchmarks/gpu_decode.py --images 33 --rounds 5
run embed_vitb32_ade20k_w15 $E --backbone vit-b-32-random --source ade20k --images 33 --repeats 8 --num-workers 15
run embed_vitb16_camvid_w15 $E --backbone vit-b-16-random --source camvid --images 48 --repeats 6 --num-workers 15
run latency_vitb16_budget80 $L --backbone vit-b-16-random --budget-mb 80
