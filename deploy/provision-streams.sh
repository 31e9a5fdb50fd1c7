#!/usr/bin/env bash
# provision-streams.sh -- creates auditwatch's own consumer group on each
# stream it reads, ahead of the first start (the daemon also does this
# itself). Never touches Caracal's groups (audit-ingestor, sts-revocation...).
#
#   deploy/provision-streams.sh [-u redis://HOST:PORT] [-g GROUP] [-s START_ID]
#
# START_ID 0 indexes all retained history (default); $ only new entries.
# The password, if any, comes from REDIS_PASSWORD_FILE (never argv).
set -euo pipefail
url=redis://127.0.0.1:6379 group=auditwatch start=0
while getopts u:g:s:h opt; do
    case $opt in
        u) url=$OPTARG ;; g) group=$OPTARG ;; s) start=$OPTARG ;;
        *) sed -n '2,10p' "$0"; exit 2 ;;
    esac
done
cli=(redis-cli -u "$url" --no-auth-warning)
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
    REDISCLI_AUTH=$(tr -d '\n' < "$REDIS_PASSWORD_FILE"); export REDISCLI_AUTH
fi
for stream in caracal.audit.events caracal.sessions.revoke caracal.agents.lifecycle \
              caracal.delegations.invalidate auditwatch.calls; do
    out=$("${cli[@]}" XGROUP CREATE "$stream" "$group" "$start" MKSTREAM 2>&1 || true)
    case $out in
        OK) echo "created group $group on $stream at $start" ;;
        *BUSYGROUP*) echo "group $group already exists on $stream" ;;
        *) echo "provision-streams: $stream: $out" >&2; exit 1 ;;
    esac
done
