#!/usr/bin/env bash
# install_layout.sh BUILD_DIR -- `cmake --install` of that build into a
# scratch prefix puts the binary, the unit, the example environment file and
# the README in place, and the unit's ExecStart, EnvironmentFile and
# Documentation= name files that were installed.
set -euo pipefail
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$1" --prefix "$prefix" >/dev/null
unit="$prefix/lib/systemd/system/auditwatch.service"
fail() { echo "install_layout: $*" >&2; exit 1; }
[ -x "$prefix/bin/auditwatch" ] || fail "no binary in $prefix/bin"
[ -f "$unit" ] || fail "no unit at $unit"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[ "$exec_start" = "$prefix/bin/auditwatch" ] || fail "ExecStart=$exec_start"
doc=$(sed -n 's|^Documentation=file://||p' "$unit")
[ -f "$doc" ] || fail "Documentation= points at $doc, which was not installed"
env_file=$(sed -n 's/^EnvironmentFile=//p' "$unit")
[ -f "$env_file.example" ] || fail "no example next to EnvironmentFile=$env_file"
"$prefix/bin/auditwatch" --version >/dev/null || fail "the installed binary does not run"
echo "install_layout: ok"
