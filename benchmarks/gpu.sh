#!/usr/bin/env bash
# The GPU benchmarks of issues 5, 6 and 8 in one command of at most 10 minutes, for the lent GPU
# machine (its python3 has jax with CUDA, flax, optax, scipy, scikit-learn, matplotlib; nothing can
# be installed there, so spikejax runs from the tree via PYTHONPATH).  Prepare here with
# benchmarks/gpu_prep.sh, then run `bash benchmarks/gpu.sh` there with carry [".gpudata"].
# Results go to $OUT (the device tool's folder that comes back; elsewhere benchmarks/results/gpu-run):
#   bench_sweep-gpu.json          K = 16 / 64 configurations, vmapped vs one after another (issue 8)
#   bench_erbp-gpu.json           eRBP / peRBP training throughput, 784-500-10, next to BP (issue 5)
#   softlif_dropout_diabetes-gpu.json   1000 permanent-dropout samples, one vmapped call vs a loop (issue 6)
#   gpu.log                       everything printed
# Copy the three .json into benchmarks/results/ and run `python benchmarks/report.py`.
# `--quick` runs every step at smoke-test size (also on a CPU, to check the plumbing).
set -uo pipefail
cd "$(dirname "$0")/.."
quick=""
[[ "${1:-}" == "--quick" ]] && quick="--quick"
out=${OUT:-benchmarks/results/gpu-run}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[[ -d .gpudata/mnist ]] && export SPIKEJAX_DATA="${SPIKEJAX_DATA:-$PWD/.gpudata}"
[[ -f .gpudata/COMMIT ]] && export SPIKEJAX_GIT_COMMIT="${SPIKEJAX_GIT_COMMIT:-$(cat .gpudata/COMMIT)}"
status=0
step() {  # step SECONDS NAME COMMAND...: run with a time limit, note failures, go on
    local limit=$1 name=$2; shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
    timeout "$limit" "$@" || { echo "=== $name FAILED (exit $?)"; status=1; }
}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
    "$py" -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())"
    step 200 sweep "$py" benchmarks/bench_sweep.py $quick --json "$out/bench_sweep-gpu.json"
    if [[ -n "${SPIKEJAX_DATA:-}" || -n "$quick" ]]; then
        batches=1000,100,10
        [[ -n "$quick" ]] && batches=20,4
        step 200 erbp "$py" benchmarks/bench_erbp.py $quick --batch "$batches" \
            --mask-modes shared,per_sample,per_sample_offset --json "$out/bench_erbp-gpu.json"
    else
        echo "=== erbp skipped: no MNIST (run benchmarks/gpu_prep.sh here and carry .gpudata)"; status=1
    fi
    tmp=$(mktemp -d)
    step 150 dropout "$py" -m experiments softlif_dropout_diabetes $quick --out "$tmp" --ckpt "$tmp/ckpt"
    found=$(ls "$tmp"/softlif_dropout_diabetes*.json 2>/dev/null | head -1)
    [[ -n "$found" ]] && cp "$found" "$out/softlif_dropout_diabetes-gpu.json"
    echo "=== done, status $status; files in $out:"; ls -la "$out"
    exit $status
} 2>&1 | tee "$out/gpu.log"
