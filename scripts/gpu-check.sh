#!/usr/bin/env bash
# The GPU check: on a machine with a real NVIDIA GPU and no package registry, from a
# prebuilt bundle (scripts/gpu-bundle.sh: the programs plus the shared libraries they
# need), it
#   1. reads the GPU through NVML (gpucoordd --list-gpus),
#   2. limits the card to 24 GiB free by holding the rest in a ballast process
#      (gpu-hold), so that validation 4.7Gi + generation 19.6Gi do not fit together,
#      as on the founding RTX 4090,
#   3. measures unload/reload of 4.7Gi of model weights against the card's pinned
#      host<->device copy bandwidth in the same run (bench/model-bench),
#   4. runs the founding system's acceptance suite on the real driver,
#   5. runs unmodified programs under libgpucoord-intercept.so (the interposer),
# and writes a report (gpu-check.md, gpu-check.log) to $OUT (or ./gpu-check-out).
# It must finish in under 8 minutes; each step has its own time limit.
#
#   scripts/gpu-check.sh [--bundle DIR] [--free SIZE]   on the GPU machine
#   scripts/gpu-check.sh --sim                          rehearsal on gpusim (80Gi card)
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bundle=$here/gpu-bundle
free_target=24Gi
sim=0
while [ $# -gt 0 ]; do
    case "$1" in
    --bundle) bundle=$2; shift 2 ;;
    --free) free_target=$2; shift 2 ;;
    --sim) sim=1; shift ;;
    *) echo "usage: gpu-check.sh [--bundle DIR] [--free SIZE] [--sim]" >&2; exit 2 ;;
    esac
done
out=${OUT:-$here/gpu-check-out}
mkdir -p "$out"
log=$out/gpu-check.log
report=$out/gpu-check.md
: >"$log"
started=$SECONDS
failures=0

if [ $sim = 1 ]; then
    build=${GPUCOORD_BUILD:-$here/build}
    work=$(mktemp -d)
    export LD_LIBRARY_PATH="$build/sim" GPUSIM_STATE="$work/gpusim" GPUSIM_DEVICES=80Gi
    export GPUSIM_H2D_GBPS=${GPUSIM_H2D_GBPS:-55} GPUSIM_D2H_GBPS=${GPUSIM_D2H_GBPS:-55}
    export GPUSIM_CONTEXT_BYTES=${GPUSIM_CONTEXT_BYTES:-512Mi}
    mode="rehearsal on gpusim (80Gi card)"
else
    build=$bundle/build
    export LD_LIBRARY_PATH="$bundle/lib:$build"
    unset GPUSIM_STATE GPUSIM_DEVICES
    mode="real GPU"
fi
[ -x "$build/gpucoordd" ] || { echo "gpu-check: no programs in $build (run scripts/gpu-bundle.sh)" >&2; exit 1; }

say() { printf '%s\n' "$*" | tee -a "$report"; }
step() { printf '\n== %s (at %ds)\n' "$*" $((SECONDS - started)) | tee -a "$log"; }

: >"$report"
say "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ), $mode"
say ""

step "GPU"
gpus=$("$build/gpucoordd" --list-gpus 2>>"$log") || { echo "gpu-check: NVML finds no GPU" | tee -a "$report"; exit 1; }
echo "$gpus" | tee -a "$log"
gpu_line=$(echo "$gpus" | head -n 1)
total=$(echo "$gpu_line" | awk '{print $3}')
free_now=$(echo "$gpu_line" | awk '{print $4}')
say "- GPU 0: $(echo "$gpu_line" | cut -d' ' -f5-), $((total >> 20)) MiB, $((free_now >> 20)) MiB free; $(echo "$gpus" | tail -n 1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv >>"$log" 2>&1

step "ballast: leave $free_target free"
case "$free_target" in
*Gi) target=$(( ${free_target%Gi} << 30 )) ;;
*Mi) target=$(( ${free_target%Mi} << 20 )) ;;
*) echo "gpu-check: --free takes NGi or NMi" >&2; exit 2 ;;
esac
ballast=$((free_now - target))
ballast_pid=""
if [ "$ballast" -gt $((256 << 20)) ]; then
    "$build/src/tools/gpu-hold" --bytes "$ballast" --chunk 1Gi --seconds 900 \
        --ready-file "$out/ballast.ready" >>"$log" 2>&1 &
    ballast_pid=$!
    for _ in $(seq 600); do [ -f "$out/ballast.ready" ] && break; sleep 0.1; done
    [ -f "$out/ballast.ready" ] || { echo "gpu-check: ballast did not start" | tee -a "$report"; exit 1; }
    say "- ballast: $((ballast >> 20)) MiB held by pid $ballast_pid, leaving $free_target free"
else
    say "- no ballast needed: the card has about $free_target free"
fi
cleanup() { [ -n "$ballast_pid" ] && kill "$ballast_pid" 2>/dev/null; rm -f "$out/ballast.ready"; }
trap cleanup EXIT

step "unload/reload vs pinned copy bandwidth"
say ""
say "## Unload and reload of 4.7Gi of model weights vs the pinned-copy floor"
say ""
if timeout 120 "$build/bench/model-bench" --bytes 4.7Gi --cycles 5 >"$out/model-bench.txt" 2>>"$log"; then
    tee -a "$report" <"$out/model-bench.txt"
else
    say "model-bench FAILED (see gpu-check.log)"
    failures=$((failures + 1))
fi

step "acceptance suite on the driver"
say ""
say "## Acceptance suite (founding system, ./start_servers.sh, real driver)"
say ""
# The tests use the driver this script set up (the card with its ballast, or the rehearsal gpusim)
export GPUCOORD_REAL_GPU=1
export GPUCOORD_BUILD=$build GENERATION_STEP_MS=${GENERATION_STEP_MS:-100}
for cls in ValidationUnloadReload SingleGeneration SeveralGenerations ConcurrentGenerations \
    GenerationKilledMidGeneration ClientDisconnects WithoutCoordination; do
    t0=$SECONDS
    if timeout 150 python3 "$here/tests/acceptance/test_founding.py" "$cls" >>"$log" 2>&1; then
        say "- $cls: passed ($((SECONDS - t0)) s)"
    else
        say "- $cls: FAILED ($((SECONDS - t0)) s; see gpu-check.log)"
        failures=$((failures + 1))
    fi
done
# The seed test step (automated_gpu_coordination_test.py) and the original client.
for cls in SeedTestScript OriginalClient; do
    t0=$SECONDS
    if timeout 150 python3 "$here/tests/acceptance/test_seed_step.py" "$cls" >>"$log" 2>&1; then
        say "- $cls: passed ($((SECONDS - t0)) s)"
    else
        say "- $cls: FAILED ($((SECONDS - t0)) s; see gpu-check.log)"
        failures=$((failures + 1))
    fi
done

step "interposer: unmodified programs on the driver"
say ""
say "## Interposer (libgpucoord-intercept.so): 19.6Gi beside a 4.7Gi resident"
say ""
if [ -f "$build/libgpucoord-intercept.so" ] && [ -x "$build/tests/intercept/alloc-prog" ]; then
    # Without the library each program gets CUDA_ERROR_OUT_OF_MEMORY; with it the
    # resident is evicted, verified free, and restored when the program exits.
    for t in test_caching_allocator_segments_through_dlsym \
        test_expandable_segments_through_the_vmm_api test_runtime_style_cuGetProcAddress \
        test_python_ctypes_killed_with_sigkill test_free_and_allocate_again_does_not_churn_the_lease \
        test_gpucoord_run_auto; do
        t0=$SECONDS
        if timeout 120 python3 "$here/tests/integration/test_intercept.py" "Intercept.$t" \
            >>"$log" 2>&1; then
            say "- $t: passed ($((SECONDS - t0)) s)"
        else
            say "- $t: FAILED ($((SECONDS - t0)) s; see gpu-check.log)"
            failures=$((failures + 1))
        fi
    done
    if [ -x "$build/bench/intercept-bench" ]; then
        say ""
        say "Allocate+free pairs of 1Mi, bare driver vs under the interposer with a lease (same run):"
        say ""
        bench_state=$(mktemp -d)
        bench_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$build/gpucoordd" --listen "127.0.0.1:$bench_port" --state-dir "$bench_state" \
            --log-level warn 2>>"$log" &
        bench_coord=$!
        sleep 1
        for round in 1 2 3; do
            b=$(timeout 60 "$build/bench/intercept-bench" 20000 2>>"$log" | awk '{print $4}')
            w=$(GPUCOORD_URL="http://127.0.0.1:$bench_port" \
                LD_PRELOAD="$build/libgpucoord-intercept.so" \
                timeout 60 "$build/bench/intercept-bench" 20000 2>>"$log" | awk '{print $4}')
            say "- round $round: bare ${b:-?} ns/pair, under the interposer ${w:-?} ns/pair"
        done
        kill "$bench_coord" 2>/dev/null
        wait "$bench_coord" 2>/dev/null
        rm -rf "$bench_state"
    fi
else
    say "- skipped: no libgpucoord-intercept.so or alloc-prog in $build (rebuild the bundle)"
fi

step "done"
say ""
say "$failures failures; $((SECONDS - started)) s in all"
exit $((failures > 0))
