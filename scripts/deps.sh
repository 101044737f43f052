#!/usr/bin/env bash
# Installs what wsk needs and is missing, from Debian packages (and, for the
# test peers only, the npm registry). Idempotent: installs nothing when all is
# there. Usage: scripts/deps.sh [build|test|bench]...
set -euo pipefail
cd "$(dirname "$0")/.."

want=(cmake ninja-build gcc clang libssl-dev zlib1g-dev pkg-config libhiredis-dev liburing-dev openssl ca-certificates)
for what in "$@"; do
    case $what in
    build) ;;
    test) want+=(python3-websockets chromium nodejs npm redis-server nginx-light tinyproxy microsocks procps iproute2 curl) ;;
    bench) want+=(libwebsockets-dev python3-websockets nodejs npm util-linux) ;;
    *) echo "deps.sh: unknown set '$what' (build, test, bench)" >&2; exit 2 ;;
    esac
done

missing=()
for pkg in "${want[@]}"; do
    # Node may come from a non-Debian install that provides node and npm.
    if [[ $pkg == nodejs ]] && command -v node >/dev/null; then continue; fi
    if [[ $pkg == npm ]] && command -v npm >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "deps.sh: installing ${missing[*]}"
    SUDO=
    [[ $(id -u) == 0 ]] || SUDO=sudo
    # Another apt or dpkg (an unattended upgrade, a second job) may hold the
    # lock: wait for it, up to 15 minutes, rather than fail.
    apt() {
        local try
        for ((try = 1; ; try++)); do
            if DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=60 "$@"; then
                return 0
            fi
            if ((try >= 15)) || ! pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null; then
                return 1
            fi
            echo "deps.sh: apt or dpkg is busy; waiting (try $try of 15)" >&2
            sleep 60
        done
    }
    apt update -qq
    apt install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for what in "$@"; do
    if [[ $what == test || $what == bench ]] && [[ -f tests/peers/package.json ]]; then
        if [[ ! -d tests/peers/node_modules ]] ||
            [[ tests/peers/package-lock.json -nt tests/peers/node_modules ]]; then
            echo "deps.sh: npm ci in tests/peers"
            (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
            touch tests/peers/node_modules
        fi
        break
    fi
done
