#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no package registry:
# the built programs and every shared library they load that is not part of glibc,
# into gpu-bundle/ (git-ignored; carry it along with the checkout).
# Usage: scripts/gpu-bundle.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
out=${2:-$here/gpu-bundle}
rm -rf "$out"
mkdir -p "$out/build/src/tools" "$out/build/bench" "$out/build/tests/tools" \
    "$out/build/tests/intercept" "$out/lib"
progs=(gpucoordd gpucoord validation-server generation-server src/tools/gpu-hold
       bench/model-bench bench/lease-bench tests/tools/fake-resident
       tests/intercept/alloc-prog bench/intercept-bench libgpucoord-intercept.so)
for p in "${progs[@]}"; do
    cp "$build/$p" "$out/build/$p"
done
cp -P "$build"/libgpucoord.so "$build"/libgpucoord.so.0 "$build"/libgpucoord.so.0.1.0 "$out/build/"
for p in "${progs[@]}"; do
    LD_LIBRARY_PATH="$build" ldd "$build/$p" | awk '/=>/ {print $3}'
done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | libresolv.so.* | ld-linux*) ;;
        libgpucoord.so*) ;;
        *) cp -L "$lib" "$out/lib/" ;;
    esac
done
du -sh "$out" | awk '{print "gpu-bundle: " $1 " in " $2}'
