#!/usr/bin/env bash
# lvm_core on a GPU, in one prepared run (under 8 minutes; every part has its
# own time limit, so one failure does not stop the others).
#
#   bash benchmarks/gpu_check.sh LOG_DIR             # on the GPU machine, repository root
#   bash benchmarks/gpu_check.sh LOG_DIR --dry-run   # anywhere: the same steps, tiny sizes,
#                                                    # array-api-strict's device1 for CuPy
#
# Without a GPU (or without CuPy) it prints one line saying so and exits 0.
#
# Wheels (the GPU machines have no network; they provide Python 3.12 with CuPy
# for CUDA 13, PyTorch with CUDA, JAX, numba, h5py, pytest and hypothesis):
# on a machine with network, before the run,
#
#   bash benchmarks/gpu_wheels.sh
#
# which runs, for array-api-compat==1.16.0 and array-api-strict==2.6.1,
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 \
#       -d benchmarks/.gpu_wheels NAME==VERSION
#
# benchmarks/.gpu_wheels/ is git-ignored: carry it to the GPU machine with the
# working tree.  This script installs them with
#   pip install --no-index --no-deps --target <tmp> benchmarks/.gpu_wheels/*.whl
# and puts <tmp> on PYTHONPATH; nothing is fetched from the network.
#
# Steps and their logs (LOG_DIR/<step>.log), each ending in RESULT lines:
#   tests  the tests parametrised with the cupy backend (conftest.py adds it
#          when CuPy sees a GPU): RESULT gpu_tests ...
#   vae    one VAE epoch (benchmark configuration): CuPy vs NumPy vs torch CUDA
#   hmm    HMM configuration b and one 10^6-step sequence (K = 32): CuPy
#          (batched and chunked-scan kernels) vs the numba kernels
#   gmm    GaussianMixture full, K = 16, 10^6 x 16: CuPy vs NumPy
set -u

if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "usage: bash benchmarks/gpu_check.sh LOG_DIR [--dry-run]" >&2
    exit 2
fi
log_dir=$1
dry_run=0
if [ "${2:-}" = "--dry-run" ]; then
    dry_run=1
fi
py=${PYTHON:-python3}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if [ "$dry_run" = 0 ]; then
    why=$("$py" -c "
import sys
try:
    import cupy
except Exception as exc:
    print(f'CuPy cannot be imported ({type(exc).__name__})'); sys.exit(1)
try:
    n = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:
    print(f'CuPy finds no CUDA device ({type(exc).__name__})'); sys.exit(1)
sys.exit(0 if n > 0 else 1)
" 2>/dev/null)
    if [ $? -ne 0 ]; then
        echo "gpu_check: no GPU here (${why:-no CuPy}); skipped, nothing run."
        exit 0
    fi
fi

mkdir -p "$log_dir"
log_dir="$(cd "$log_dir" && pwd)"
cd "$repo" || exit 1
started=$(date +%s)
echo "gpu_check: logs in $log_dir (dry run: $dry_run)"

# wheels from the git-ignored folder beside this script; never the network
wheels="$here/.gpu_wheels"
site="$(mktemp -d "${TMPDIR:-/tmp}/lvm_core_gpu_site.XXXXXX")"
trap 'rm -rf "$site"' EXIT
if ls "$wheels"/*.whl >/dev/null 2>&1; then
    if "$py" -m pip install --no-index --no-deps --target "$site" "$wheels"/*.whl \
            >"$log_dir/wheels.log" 2>&1; then
        echo "gpu_check: installed $(ls "$wheels"/*.whl | wc -l) wheel(s) from $wheels"
    else
        echo "gpu_check: installing the wheels failed (see $log_dir/wheels.log)"
    fi
else
    echo "gpu_check: no wheels in $wheels (run benchmarks/gpu_wheels.sh where there is network)"
fi
export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
export LVM_CORE_QUIET_COMPILE=1
if ! "$py" -c "import array_api_compat, lvm_core" >>"$log_dir/wheels.log" 2>&1; then
    echo "gpu_check: lvm_core cannot be imported (array-api-compat missing?): see $log_dir/wheels.log"
fi
if [ "$dry_run" = 0 ]; then
    nvidia-smi -L >"$log_dir/device.log" 2>&1 && sed 's/^/gpu_check: /' "$log_dir/device.log"
fi

# run_step NAME SECONDS COMMAND...: the command's output goes to NAME.log; its
# RESULT lines are echoed; a failure or a timeout is reported as a RESULT line
run_step() {
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$log_dir/$name.log" 2>&1
    rc=$?
    grep '^RESULT' "$log_dir/$name.log"
    if [ $rc -ne 0 ]; then
        local what="failed"
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then what="timed_out"; fi
        echo "RESULT gpu_check_step name=$name status=$what rc=$rc seconds=$(( $(date +%s) - t0 )) log=$log_dir/$name.log"
        tail -n 5 "$log_dir/$name.log" | sed "s/^/gpu_check: $name: /"
    else
        echo "gpu_check: $name done in $(( $(date +%s) - t0 )) s"
    fi
}

# 1. the CuPy test subset (the dry run runs the simulated-device tests of one file instead)
if [ "$dry_run" = 1 ]; then
    test_args=(lvm_core_tests/test_hmm_scan.py -k "device1")
else
    # the backend-parametrised tests' cupy cells and test_ops_cupy.py (its module name
    # matches: the fused CuPy kernels against the reference); test_examples' "cupy" tests use a
    # stand-in CuPy (no GPU) and this check's own test would run it again
    test_args=(lvm_core_tests -k cupy --ignore=lvm_core_tests/test_examples.py
               --ignore=lvm_core_tests/test_gpu_check.py)
fi
tests_cmd() {
    "$py" -m pytest "${test_args[@]}" -q -p no:cacheprovider -rfE
    local rc=$?
    echo "RESULT gpu_tests summary=\"$(grep -E '(passed|failed|error|no tests ran)' "$log_dir/tests.log" \
        | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')\" rc=$rc"
    return $rc
}
run_step tests 150 bash -c "$(declare -p test_args py log_dir); $(declare -f tests_cmd); tests_cmd"

# 2-4. measurements (python benchmarks/gpu_check.py PART [--dry-run])
extra=()
if [ "$dry_run" = 1 ]; then extra=(--dry-run); fi
run_step vae 120 "$py" benchmarks/gpu_check.py vae "${extra[@]}"
run_step hmm 110 "$py" benchmarks/gpu_check.py hmm "${extra[@]}"
run_step gmm 80 "$py" benchmarks/gpu_check.py gmm "${extra[@]}"

echo "gpu_check: finished in $(( $(date +%s) - started )) s"
exit 0
