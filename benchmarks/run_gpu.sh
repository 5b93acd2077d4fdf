#!/usr/bin/env bash
# Every benchmark on one CUDA GPU in about 7 minutes; results into the folder $1:
#   summary.txt     every table, in order, with each command, its exit status and seconds
#   NAME.txt        a benchmark's stdout (table + JSON lines), NAME.err its stderr (notes, failures)
#   NAME.jsonl      its JSON objects, one per setting; all.jsonl: all of them (updated after each step)
#   env.txt         torch, CUDA, the GPU (nvidia-smi)
# Each step has its own time limit and the whole script a budget (BENCH_BUDGET_S, default 420 s): a
# step that would start with too little time left is skipped, so the most important ones run first.
#
# With OFFICIAL=PATH (a checkout of github.com/taoxugit/AttnGAN) the official code is timed too (step 1b).
#
#   bash benchmarks/run_gpu.sh /tmp/gpu-results
#   OFFICIAL=/path/to/AttnGAN bash benchmarks/run_gpu.sh /tmp/gpu-results
set -u
OUT=${1:?usage: benchmarks/run_gpu.sh RESULTS_DIR}
BUDGET=${BENCH_BUDGET_S:-420}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}
command -v "$PY" >/dev/null || PY=python3

step() {  # NAME SECONDS COMMAND...: run COMMAND for at most SECONDS (and within the budget)
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if ((left < 30)); then
        echo "== $name: skipped (${left} s of the budget left)" | tee -a "$OUT/summary.txt"
        return
    fi
    ((limit > left)) && limit=$left
    echo "== $name (at most ${limit} s): $*" | tee -a "$OUT/summary.txt"
    local t0=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
    local rc=$?
    grep '^{' "$OUT/$name.txt" >"$OUT/$name.jsonl"
    grep -v '^{' "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
    grep '^note:' "$OUT/$name.err" | tee -a "$OUT/summary.txt"
    ((rc != 0)) && tail -5 "$OUT/$name.err" | sed 's/^/   stderr: /' | tee -a "$OUT/summary.txt"
    local why=""
    ((rc == 124 || rc == 137)) && why=" (its time limit)"
    echo "   exit ${rc}${why} after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    for f in "$OUT"/*.jsonl; do [ "$f" = "$OUT/all.jsonl" ] || cat "$f"; done >"$OUT/all.tmp"
    mv "$OUT/all.tmp" "$OUT/all.jsonl"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv 2>&1
    $PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name(0), 'CPU threads', torch.get_num_threads())" 2>&1
} >"$OUT/env.txt"
cat "$OUT/env.txt" | tee -a "$OUT/summary.txt"

# eager settings run one after the other in one process (--in-process: one start of Python, torch and
# CUDA per step; CUDA peak memory is still per setting); a compiled setting runs alone in its process
T="benchmarks/bench_train.py --device cuda --json"
S="benchmarks/bench_sample.py --device cuda --json"
E="benchmarks/bench_eval.py --device cuda --json"

# 1. training, bird preset (3 stages, 256 px, inception-v3 encoder, 5450 words): batch 20 in every
#    precision (fp32 = strict IEEE, tf32 = TF32 matmuls + convolutions), then batch 64
step train_bird_b20 100 $PY $T --presets bird --batches 20 --precisions fp32,tf32,bf16,fp16 --steps 10 --warmup 3 --in-process
step train_bird_b64 60 $PY $T --presets bird --batches 64 --precisions fp32,bf16 --steps 5 --warmup 2 --in-process
# 1b. against the official code in the same precisions (each setting in its own process)
if [ -n "${OFFICIAL:-}" ]; then
    step train_bird_official 150 $PY $T --presets bird --batches 20 --precisions fp32,bf16 --steps 10 --warmup 3 --official "$OFFICIAL"
    step sample_bird_official 90 $PY $S --preset bird --batch 20 --precisions fp32,bf16 --repeats 5 --no-files --official "$OFFICIAL"
fi
# 2. sampling, bird preset, batch 64
step sample_bird 60 $PY $S --preset bird --batch 64 --precisions fp32,bf16,fp16 --repeats 5 --in-process
# 3. torch.compile (G and the Ds; a failure falls back to eager with a printed note)
step train_bird_compile 150 $PY $T --presets bird --batches 20 --precisions bf16 --steps 10 --warmup 3 --compile
# 4. evaluation: attngan eval -m rprecision (no autocast, as eval runs) and the IS/FID Inception features
step eval_bird 80 $PY $E --preset bird --num-samples 1000 --batch 50 --precisions fp32,tf32 --in-process
# 5. where a training step's time goes (torch.profiler)
step profile_bird 60 $PY benchmarks/profile_train.py --device cuda --preset bird --precision bf16 --steps 2 --json
# 6. sampling compiled
step sample_bird_compile 80 $PY $S --preset bird --batch 64 --precisions bf16 --repeats 5 --compile --no-files
echo "done in ${SECONDS} s; results in $OUT" | tee -a "$OUT/summary.txt"
