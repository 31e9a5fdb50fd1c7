#!/usr/bin/env bash
# install-deps.sh -- installs the Debian packages auditwatch needs, and only
# those that are missing, so running it again is a no-op.
#
#   deploy/install-deps.sh run     build and run the daemon
#   deploy/install-deps.sh test    also the test framework
#   deploy/install-deps.sh bench   also jq (bench/run scores alerts with it)
#
# Uses sudo when not root. Safe to source or to run.
set -euo pipefail

aw_packages_for() {
    local pkgs=(build-essential cmake pkg-config libhiredis-dev libuv1-dev
                libmsgpack-dev libsqlite3-dev libcjson-dev libssl-dev libzstd-dev
                libmicrohttpd-dev redis-server redis-tools sqlite3)
    case ${1:-run} in
        # clang: tests/fuzz; prometheus: its promtool checks /metrics and the example rules
        test) pkgs+=(libcriterion-dev clang clang-format libclang-rt-14-dev prometheus) ;;
        bench) pkgs+=(jq) ;;
    esac
    printf '%s\n' "${pkgs[@]}"
}

aw_install_deps() {
    local missing=() pkg
    for pkg in $(aw_packages_for "${1:-run}"); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; return 1; }
        sudo=(sudo)
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    aw_install_deps "${1:-run}"
fi
