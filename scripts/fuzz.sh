#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers with libFuzzer (docs/fuzzing.md).
#
# Usage: scripts/fuzz.sh [--merge] [--replay-crashes] [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  how long each target runs (default 60)
#   TARGET              api_json config size form ply b64 json_lifted (default: all), with or
#                       without the fuzz_ prefix
#   --merge             afterwards, merge the inputs that add coverage into the
#                       committed corpus tests/fuzz/corpus/fuzz_TARGET (libFuzzer -merge=1)
#   --replay-crashes    instead of fuzzing, replay tests/fuzz/crashes/fuzz_TARGET
#                       (known findings) and say which still reproduce
#
# Builds build-fuzz (clang, ASan + UBSan, coverage-instrumented, -Dfuzz=true) when
# needed; $FUZZ_BUILD overrides the folder. Installs nothing: scripts/install-deps.sh
# installs clang and libclang-rt-14-dev. Each target reads the committed corpus and
# writes what it finds under fuzz-out/TARGET/ (new/: coverage-increasing inputs,
# crash-*, leak-*, timeout-*, oom-*: reproducers; log). Exits 1 when any target
# found something (the reproducer is named), 2 on a usage or setup error.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
out=$root/fuzz-out
all_targets=(api_json config size form ply b64 json_lifted)

merge=0
replay_crashes=0
seconds=60
seconds_set=
targets=()
for arg in "$@"; do
    case "$arg" in
    --merge) merge=1 ;;
    --replay-crashes) replay_crashes=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "fuzz.sh: unknown option '$arg'" >&2
        exit 2
        ;;
    *)
        if [[ "$arg" =~ ^[0-9]+$ ]] && [ -z "$seconds_set" ] && [ ${#targets[@]} -eq 0 ]; then
            seconds=$arg
            seconds_set=1
        else
            t=${arg#fuzz_}
            if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
                echo "fuzz.sh: unknown target '$arg' (known: ${all_targets[*]})" >&2
                exit 2
            fi
            targets+=("$t")
        fi
        ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
if [ "$seconds" -lt 1 ]; then
    echo "fuzz.sh: SECONDS_PER_TARGET must be at least 1" >&2
    exit 2
fi

# clang with the libFuzzer runtime, checked by building a do-nothing target.
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz.sh: clang not found; run scripts/install-deps.sh" >&2
    exit 2
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$probe/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" 2>"$probe/err"; then
    echo "fuzz.sh: clang cannot link libFuzzer (libclang-rt-14-dev missing?); run scripts/install-deps.sh" >&2
    cat "$probe/err" >&2
    exit 2
fi

# Configure once; meson reconfigures and ninja rebuilds what changed.
if [ ! -f "$build/build.ninja" ]; then
    echo "fuzz.sh: configuring $build" >&2
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fsanitize=fuzzer-no-link >"$probe/setup.log" 2>&1 || {
        cat "$probe/setup.log" >&2
        exit 2
    }
fi
if ! meson introspect "$build" --buildoptions | python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
sys.exit(0 if opts.get("fuzz") else 1)'; then
    echo "fuzz.sh: $build is not configured with -Dfuzz=true (remove it, or set FUZZ_BUILD)" >&2
    exit 2
fi
exes=()
for t in "${targets[@]}"; do
    exes+=("tests/fuzz/fuzz-$t" "tests/fuzz/fuzz-strict-replay-$t")
done
ninja -C "$build" "${exes[@]}" sim/libnvidia-ml.so.1 >"$probe/build.log" 2>&1 || {
    tail -40 "$probe/build.log" >&2
    exit 2
}

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LD_LIBRARY_PATH=$build/sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Known leaks (docs/fuzzing.md) are suppressed by function name: that needs whole
# malloc stacks, through libjansson (no frame pointers), so the slow unwinder.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0}
asan_options_for() {
    case "$1" in
    api_json) echo "${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" ;;
    *) echo "${ASAN_OPTIONS:-}" ;;
    esac
}

dict_for() {
    case "$1" in
    api_json | json_lifted) echo json.dict ;;
    config) echo ini.dict ;;
    size) echo size.dict ;;
    form) echo form.dict ;;
    ply) echo ply.dict ;;
    *) echo "" ;;
    esac
}

if [ "$replay_crashes" = 1 ]; then
    status=0
    for t in "${targets[@]}"; do
        dir=$root/tests/fuzz/crashes/fuzz_$t
        [ -d "$dir" ] || continue
        for f in "$dir"/*; do
            [ -f "$f" ] || continue
            case "$f" in *.md | *.txt) continue ;; esac
            # In a child shell, which reports an abort into the log, not here.
            if TMPDIR=$probe ASAN_OPTIONS=$(asan_options_for "$t") LSAN_OPTIONS= bash -c '"$@"; exit $?' _ \
                "$build/tests/fuzz/fuzz-strict-replay-$t" "$f" >"$probe/replay.log" 2>&1; then
                echo "fixed:      $f"
            else
                echo "reproduces: $f"
                grep -m3 -E "ERROR:|runtime error|property violated" "$probe/replay.log" |
                    sed 's/^/    /' || true
                status=1
            fi
        done
    done
    exit $status
fi

status=0
summary=()
for t in "${targets[@]}"; do
    dir=$out/$t
    mkdir -p "$dir/new" "$dir/tmp"
    args=("$dir/new" "$root/tests/fuzz/corpus/fuzz_$t" -max_total_time="$seconds" -timeout=5
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/")
    d=$(dict_for "$t")
    [ -z "$d" ] || args+=(-dict="$root/tests/fuzz/dict/$d")
    echo "fuzz.sh: fuzz_$t for ${seconds}s (log: $dir/log)" >&2
    rc=0
    TMPDIR=$dir/tmp ASAN_OPTIONS=$(asan_options_for "$t") "$build/tests/fuzz/fuzz-$t" "${args[@]}" \
        >"$dir/log" 2>&1 || rc=$?
    rm -rf "$dir/tmp"
    final=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 || true)
    [ -n "$final" ] || final=$(grep -E '^#[0-9]+' "$dir/log" | tail -1 || true)
    if [ "$rc" -ne 0 ]; then
        status=1
        repro=$(grep -oE 'Test unit written to [^ ]+' "$dir/log" | sed 's/Test unit written to //' | tail -1 || true)
        summary+=("fuzz_$t: FINDING (exit $rc): ${repro:-see $dir/log}")
        echo "fuzz.sh: fuzz_$t found something; reproducer: ${repro:-none written, see $dir/log}" >&2
        grep -m5 -E '^==[0-9]+==ERROR|runtime error|property violated|SUMMARY' "$dir/log" | sed 's/^/    /' >&2 || true
        echo "    replay: LD_LIBRARY_PATH=$build/sim $build/tests/fuzz/fuzz-replay-$t ${repro:-FILE}" >&2
    else
        summary+=("fuzz_$t: ok, $(sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/\1 runs, /; s/ lim:.*//' <<<"$final")")
    fi
    if [ "$merge" = 1 ] && [ "$rc" -eq 0 ]; then
        before=$(ls "$root/tests/fuzz/corpus/fuzz_$t" | wc -l)
        TMPDIR=$probe ASAN_OPTIONS=$(asan_options_for "$t") "$build/tests/fuzz/fuzz-$t" -merge=1 -timeout=5 -rss_limit_mb=2048 \
            "$root/tests/fuzz/corpus/fuzz_$t" "$dir/new" >"$dir/merge.log" 2>&1 || {
            echo "fuzz.sh: merging fuzz_$t failed (see $dir/merge.log)" >&2
            status=1
        }
        after=$(ls "$root/tests/fuzz/corpus/fuzz_$t" | wc -l)
        echo "fuzz.sh: merged $((after - before)) inputs into tests/fuzz/corpus/fuzz_$t" >&2
    fi
done

printf '%s\n' "${summary[@]}"
exit $status
