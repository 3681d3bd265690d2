#!/usr/bin/env bash
# Every GPU check of docs/benchmarks.md in one call on a CUDA machine: the test suite with CUDA visible,
# then the GPU benchmarks, each stage time-limited, every log under $OUT (default: device-out/).
#
#   bash scripts/device_checks.sh                 # all stages
#   bash scripts/device_checks.sh tests glimpse   # only these stages: tests, suite, glimpse, env, train, syncs
#
# Where the machine has no registry access, wheels of the missing pure-Python dependencies can sit in
# .whl/ (there: gymnasium, farama-notifications, stable-baselines3, sb3-contrib, mlxtend, tyro,
# docstring-parser, typeguard): they are installed first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
stages=${*:-tests suite glimpse env train syncs}
want() { [[ " $stages " == *" $1 "* ]]; }
run() {  # run NAME SECONDS COMMAND...: tee the output to $OUT/NAME.log
    local name=$1 limit=$2; shift 2
    echo "=== $name: $*" | tee "$OUT/$name.log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/$name.log"
}

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc; } | tee "$OUT/machine.txt"

# The CUDA tests alone first (fast, and what this stage is for), then the whole suite with CUDA visible,
# in parallel workers (pytest-xdist: the CUDA image has it); whatever fails in parallel is re-run
# serially, so only real failures remain.
want tests && run tests 120 $PY -m pytest -q -p no:cacheprovider -rs -k "cuda or device" tests
if want suite; then
    run suite 300 env OMP_NUM_THREADS=2 $PY -m pytest -q -n 8 -p no:randomly
    grep -q " failed" "$OUT/suite.log" && run suite-serial 240 $PY -m pytest -q --lf
fi
if want glimpse; then
    for dtype in uint8 float32; do
        run "glimpse-$dtype" 180 $PY scripts/bench_glimpse.py --device cuda --batch 256 4096 65536 --image 1x60x60 \
            --dtype "$dtype" --loop-max-batch 4096 --budget 1
    done
fi
want env && run env 180 $PY scripts/bench_env.py --device cuda --num-envs 256,4096,65536 --budget 1
if want train; then
    for batch in 128 4096 16384; do
        run "train-$batch" 120 $PY scripts/bench_train.py --device cuda --batch-size "$batch" --updates 10 --repeats 3
    done
fi
want syncs && run syncs 120 $PY scripts/profile_cuda.py --num-envs 4096 --profile 65536
date -u | tee -a "$OUT/machine.txt"
