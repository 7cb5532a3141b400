#!/usr/bin/env bash
# The GPU figures and CUDA tests, in one call on a GPU machine (the device tool), from a copy of the repo.
# Usage: bash bench/gpu_checks.sh OUTDIR [quick]. Needs python3 with torch+CUDA; scikit-optimize, pyaml and the
# dask wheels are installed from .whl/ when present (the device machine has no registry). Writes logs to OUTDIR.
set -u
out=${1:?usage: bench/gpu_checks.sh OUTDIR}
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
step python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/torch_layer/test_cuda.py 2>&1 | tee "$out/cuda_tests.log"
{
  step python3 bench/fused.py --device cuda --k 256 --epochs 30 --eager-k 8 --repeat 2
  for k in 16 64 1024; do step python3 bench/fused.py --device cuda --k $k --epochs 30 --eager-k 4 --repeat 1; done
} 2>&1 | tee "$out/fused_cuda.log"
{
  step python3 bench/memory.py --device cuda --trials 200 --warmup 20
  step python3 bench/memory.py --device cuda --trials 200 --warmup 20 --batch 16
} 2>&1 | grep -v '^rss_mb=' | tee "$out/memory_cuda.log"
if [ "${2:-}" != quick ]; then
  step python3 bench/dask_overhead.py --trials 40 --repeats 3 --out "$out/dask_overhead_16cpu.md" 2>&1 | tail -5
fi
