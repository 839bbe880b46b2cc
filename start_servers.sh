#!/usr/bin/env bash
# Starts the founding system: gpucoordd, the validation server and the generation
# server - on the real GPU when NVML finds one, otherwise on gpusim (a simulated
# RTX 4090). Installs missing packages and builds first when needed.
#
#   ./start_servers.sh            start, wait until healthy, stay in the foreground
#                                 (Ctrl-C stops all three)
#   ./start_servers.sh --detach   start and return once healthy
#   ./start_servers.sh stop       stop what is running
#   ./start_servers.sh status     say what is running
#
# Ports: GPUCOORD_PORT (10010), VALIDATION_PORT (10006), GENERATION_PORT (8095).
# The two servers listen on SERVERS_HOST (127.0.0.1); SERVERS_HOST=0.0.0.0 opens them
# (and their unauthenticated /unload_models/) to the network.
# Logs go to logs/; state and pids to run/ (GPUCOORD_RUN_DIR, GPUCOORD_LOG_DIR).
# GPUCOORD_FORCE_SIM=1 uses gpusim even when a GPU is present; GPUCOORD_DISABLE=1
# runs the servers without coordination (to see the original OOM).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${GPUCOORD_BUILD_DIR:-$here/build}
run_dir=${GPUCOORD_RUN_DIR:-$here/run}
log_dir=${GPUCOORD_LOG_DIR:-$here/logs}
coord_port=${GPUCOORD_PORT:-10010}
val_port=${VALIDATION_PORT:-10006}
gen_port=${GENERATION_PORT:-8095}
servers_host=${SERVERS_HOST:-127.0.0.1}
health_wait_s=${GPUCOORD_START_WAIT_S:-60}
names=(gpucoordd validation-server generation-server)

say() { printf '%s\n' "$*"; }
die() { printf 'start_servers.sh: %s\n' "$*" >&2; exit 1; }

pid_of() { # name -> pid if running
    local f="$run_dir/$1.pid" pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop_all() {
    local pid stopped=0
    # Generation first (releases its lease), the coordinator last.
    for name in generation-server validation-server gpucoordd; do
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
            say "stopped $name (pid $pid)"
            stopped=1
        fi
        rm -f "$run_dir/$name.pid"
    done
    [ $stopped = 1 ] || say "nothing was running"
}

status_all() {
    local pid any=1
    for name in "${names[@]}"; do
        if pid=$(pid_of "$name"); then say "$name: running (pid $pid)"; any=0
        else say "$name: stopped"; fi
    done
    return $any
}

# GET url answers JSON with "models_loaded": true.
models_loaded() {
    python3 -c 'import json, sys, urllib.request
sys.exit(0 if json.load(urllib.request.urlopen(sys.argv[1], timeout=2)).get("models_loaded") else 1)' \
        "$1" >/dev/null 2>&1
}

# GET url succeeds (curl, or python3 where curl is missing, as on bare GPU images).
healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -m 2 "$1" >/dev/null 2>&1
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$1" >/dev/null 2>&1
    fi
}

case "${1:-start}" in
stop) stop_all; exit 0 ;;
status) status_all; exit $? ;;
start | --detach | -d) ;;
-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) die "unknown command '$1' (start, --detach, stop, status)" ;;
esac
detach=0
for a in "$@"; do case "$a" in --detach | -d) detach=1 ;; esac; done

for name in "${names[@]}"; do
    if pid=$(pid_of "$name"); then
        die "$name is already running (pid $pid); './start_servers.sh stop' first"
    fi
done

# Packages and build (GPUCOORD_NO_BUILD=1: use the build folder as it is).
if [ "${GPUCOORD_NO_BUILD:-0}" = 1 ]; then
    [ -x "$build/gpucoordd" ] || die "no build in $build (unset GPUCOORD_NO_BUILD to build)"
elif ! "$here/scripts/install-deps.sh" --build --check >/dev/null 2>&1; then
    say "installing missing packages..."
    "$here/scripts/install-deps.sh" --build
fi
if [ "${GPUCOORD_NO_BUILD:-0}" != 1 ]; then
    if [ ! -f "$build/build.ninja" ]; then
        say "building (first time)..."
        meson setup "$build" "$here" >/dev/null
    fi
    ninja -C "$build" >/dev/null || die "build failed: run 'ninja -C $build' to see why"
fi

mkdir -p "$run_dir" "$log_dir"

# Real GPU or gpusim?
if [ "${GPUCOORD_FORCE_SIM:-0}" != 1 ] && gpus=$("$build/gpucoordd" --list-gpus 2>/dev/null); then
    # The first line, without head(1): head leaves early and, under pipefail, the
    # writer's SIGPIPE would fail the script.
    mode="real GPU: $(printf '%s\n' "${gpus%%$'\n'*}" | cut -d' ' -f5-)"
else
    export LD_LIBRARY_PATH="$build/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export GPUSIM_STATE="${GPUSIM_STATE:-$run_dir/gpusim-state}"
    export GPUSIM_DEVICES="${GPUSIM_DEVICES:-24564Mi}"
    mode="gpusim: no NVIDIA GPU found, simulating an RTX 4090 ($GPUSIM_DEVICES; accounting only)"
fi
say "gpucoord: $mode"

export GPUCOORD_URL="http://127.0.0.1:$coord_port"
start_one() { # name, then argv
    local name=$1
    shift
    setsid "$@" >>"$log_dir/$name.log" 2>&1 </dev/null &
    echo $! >"$run_dir/$name.pid"
}

trap 'stop_all; exit 130' INT TERM
start_one gpucoordd "$build/gpucoordd" --listen "127.0.0.1:$coord_port" \
    --state-dir "$run_dir/state" --socket "$run_dir/gpucoord.sock" ${GPUCOORD_CONFIG:+--config "$GPUCOORD_CONFIG"}
deadline=$((SECONDS + health_wait_s))
until healthy "$GPUCOORD_URL/health"; do
    pid_of gpucoordd >/dev/null || { tail -n 5 "$log_dir/gpucoordd.log" >&2; stop_all; die "gpucoordd exited; see $log_dir/gpucoordd.log"; }
    [ $SECONDS -lt $deadline ] || { stop_all; die "gpucoordd not healthy after ${health_wait_s}s"; }
    sleep 0.1
done
start_one validation-server "$build/validation-server" --host "$servers_host" --port "$val_port"
start_one generation-server "$build/generation-server" --host "$servers_host" --port "$gen_port"
for check in "validation-server http://127.0.0.1:$val_port/health/" \
             "generation-server http://127.0.0.1:$gen_port/health/"; do
    name=${check%% *}
    url=${check#* }
    until healthy "$url"; do
        pid_of "$name" >/dev/null || { tail -n 5 "$log_dir/$name.log" >&2; stop_all; die "$name exited; see $log_dir/$name.log"; }
        [ $SECONDS -lt $deadline ] || { stop_all; die "$name not healthy after ${health_wait_s}s"; }
        sleep 0.1
    done
done
# The validation server registers itself as a resident: wait for that too.
until [ "${GPUCOORD_DISABLE:-0}" = 1 ] || healthy "$GPUCOORD_URL/v1/residents/${VALIDATION_RESIDENT_NAME:-validation}"; do
    [ $SECONDS -lt $deadline ] || { stop_all; die "the validation server did not register"; }
    sleep 0.1
done
# Its models go on the GPU once the coordinator has room for them: up means loaded.
until models_loaded "http://127.0.0.1:$val_port/health/"; do
    [ $SECONDS -lt $deadline ] || { stop_all; die "the validation models did not load"; }
    sleep 0.1
done

cat <<EOF
all three are up:
  coordinator        $GPUCOORD_URL        (also unix:$run_dir/gpucoord.sock)
  validation server  http://127.0.0.1:$val_port
  generation server  http://127.0.0.1:$gen_port
  logs               $log_dir/

try:
  $build/gpucoord --url $GPUCOORD_URL status
  curl -X POST http://127.0.0.1:$gen_port/generate/ -F prompt="a red cube" -F seed=42 -o cube.ply
  printf '{"prompt":"a red cube","data":"%s","compression":0,"generate_preview":false}' "\$(base64 -w0 cube.ply)" > request.json
  curl -X POST http://127.0.0.1:$val_port/validate_txt_to_3d_ply/ -H 'Content-Type: application/json' -d @request.json
  $build/gpucoord --url $GPUCOORD_URL events
EOF

if [ $detach = 1 ]; then
    say "running in the background; './start_servers.sh stop' stops them"
    exit 0
fi
say "press Ctrl-C to stop"
while pid_of gpucoordd >/dev/null && pid_of validation-server >/dev/null &&
    pid_of generation-server >/dev/null; do
    sleep 1
done
for name in "${names[@]}"; do
    pid_of "$name" >/dev/null || say "$name exited; see $log_dir/$name.log"
done
stop_all
exit 1
