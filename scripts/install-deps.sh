#!/usr/bin/env bash
# Installs the Debian packages gpucoord needs to build, test and run.
# Idempotent: does nothing when everything is already there.
# Usage: scripts/install-deps.sh [--build] [--check]
#   --build  only what building and running needs (./start_servers.sh, make): not the
#            test suite's browser, promtool and packaging tools
#   --check  only report, exit 1 if missing
set -euo pipefail

build_packages=(
    build-essential pkg-config meson ninja-build
    libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev
    python3 curl procps
)
test_packages=(
    clang libclang-rt-14-dev bats
    # Operations checks: systemd-analyze verify on the units, man page rendering,
    # the dashboard in headless Chromium, promtool on /metrics, the manifests,
    # the Debian package.
    systemd groff-base man-db chromium chromium-driver python3-selenium prometheus
    python3-yaml debhelper lintian
)

only_build=0
check=0
for a in "$@"; do
    case "$a" in
    --build) only_build=1 ;;
    --check) check=1 ;;
    *) echo "install-deps: unknown option '$a' (use --build, --check)" >&2; exit 2 ;;
    esac
done
packages=("${build_packages[@]}")
[ "$only_build" = 1 ] || packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$check" = 1 ]; then
    echo "missing packages: ${missing[*]}" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
