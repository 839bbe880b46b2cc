#!/usr/bin/env bash
# Builds the Debian packages from this tree (dpkg-buildpackage -b -us -uc), fails on
# any lintian error, unpacks them into a scratch root and runs the packaged
# gpucoordd there on gpusim (build/sim, so run `make` first) until /health answers;
# the packaged CLI and Python client then talk to it. Nothing is installed on the
# machine itself.
# Usage: scripts/deb-check.sh [OUTDIR]   (OUTDIR keeps the .deb files)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out=${1:-}
[ -e build/sim/libnvidia-ml.so.1 ] || { echo "deb-check: build/sim missing, run make first" >&2; exit 2; }

work=$(mktemp -d /tmp/gpucoord-deb.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# dpkg-buildpackage writes its build folder into the source and its results next
# to it: build in a copy of the tracked and new (not ignored) files.
mkdir -p "$work/src"
git ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$work/src"
echo "deb-check: building packages"
(cd "$work/src" &&
    DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
        timeout 900 dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) ||
    { tail -50 "$work/build.log" >&2; echo "deb-check: dpkg-buildpackage failed" >&2; exit 1; }
ls "$work"/*.deb

echo "deb-check: lintian"
timeout 300 lintian --fail-on error "$work"/*.changes

echo "deb-check: the packaged daemon on gpusim"
root="$work/root"
for d in "$work"/*.deb; do dpkg-deb -x "$d" "$root"; done
dpkg-deb -c "$work"/gpucoord_*.deb >"$work/contents"
grep -q 'lib/systemd/system/gpucoordd.service' "$work/contents"
dpkg-deb -e "$work"/gpucoord_*.deb "$work/control"
grep -q 'systemd-sysusers' "$work/control/postinst" # the service user is created
grep -q 'gpucoordd.service' "$work/control/postinst"
libdir=$(dirname "$(find "$root/usr/lib" -name 'libgpucoord.so.0' | head -1)")
"$root/usr/bin/gpucoordd" --help >/dev/null
[ -f "$libdir/gpucoord/libgpucoord-intercept.so" ] ||
    { echo "deb-check: the interposer is not in the package" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LD_LIBRARY_PATH="$top/build/sim" GPUSIM_STATE="$work/gpusim" \
    "$root/usr/bin/gpucoordd" --config "$root/etc/gpucoord/gpucoord.conf" \
    --listen "127.0.0.1:$port" --state-dir "$work/state" 2>"$work/gpucoordd.log" &
pid=$!
for _ in $(seq 100); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"ok"'; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/gpucoordd.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS --max-time 2 "http://127.0.0.1:$port/health"
echo
LD_LIBRARY_PATH="$libdir" "$root/usr/bin/gpucoord" --url "http://127.0.0.1:$port" status >/dev/null
PYTHONPATH="$root/usr/lib/python3/dist-packages" python3 -c "
import gpucoord, sys
assert gpucoord.__file__.startswith('$root'), gpucoord.__file__
print('python client', gpucoord.__file__)"
if [ -n "$out" ]; then
    mkdir -p "$out" && cp "$work"/*.deb "$out"/
fi
echo "deb-check: ok"
