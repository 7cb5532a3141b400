#!/usr/bin/env bash
# The GPU figures and CUDA tests, in one call on a GPU machine (the device tool), from a copy of the repo.
# Usage: bash bench/gpu_checks.sh OUTDIR [PART...]; parts: tests fused profile memory fit dask (default: all).
# Needs python3 with torch+CUDA; scikit-optimize, pyaml and the dask wheels are installed from .whl/ when present
# (the device machine has no package registry). Writes one log per part to OUTDIR.
set -u
out=${1:?usage: bench/gpu_checks.sh OUTDIR [PART...]}
shift
parts=${*:-tests fused profile memory fit dask}
export PYTHONUNBUFFERED=1 NBAUTOML_QUIET=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/machine.txt"
python3 -c "import torch, sys, os; print(torch.__version__, sys.version.split()[0], os.cpu_count(), 'cpus')" \
  | tee -a "$out/machine.txt"
step() { echo "== $*"; /usr/bin/time -f "   took %e s" "$@"; }
for part in $parts; do
  case $part in
    tests) step python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/torch_layer/test_cuda.py 2>&1 \
             | tee "$out/cuda_tests.log" ;;
    fused) {
        step python3 bench/fused.py --device cuda --k 256 --epochs 30 --eager-k 8 --repeat 2
        step python3 bench/fused.py --device cuda --k 1024 --epochs 30 --eager-k 4 --repeat 1
        step python3 bench/fused.py --device cuda --model cnn2d --k 256 --epochs 30 --eager-k 8 --repeat 2
        step python3 bench/fused.py --device cuda --model cnn2d --k 64 --epochs 30 --eager-k 4 --repeat 1
      } 2>&1 | tee "$out/fused_cuda.log" ;;
    profile) step python3 bench/profile_fused.py --k 256 2>&1 | tee "$out/profile_cuda.log" ;;
    memory) {
        step python3 bench/memory.py --device cuda --trials 200 --warmup 20
        step python3 bench/memory.py --device cuda --trials 200 --warmup 20 --batch 16
      } 2>&1 | grep -v '^rss_mb=' | tee "$out/memory_cuda.log" ;;
    fit) step python3 bench/fit_fused.py --sets digits_mlp digits_cnn --splits 1 --trials 48 --threads 4 \
           --out "$out/fit_fused_cuda.md" 2>&1 | tee "$out/fit_fused_cuda.log" ;;
    dask) step python3 bench/dask_overhead.py --trials 40 --repeats 3 --out "$out/dask_overhead_16cpu.md" 2>&1 \
            | tail -5 ;;
  esac
done
