#!/usr/bin/env bash
# Resident memory of one fleet node (issue 15: what stays local): a real 6-process Redis
# Cluster on loopback (Debian redis-server) and one `tempmx serve --fleet` with the
# default `[store]` budget (256 MiB). Prints VmRSS 5 s after start (idle), then again
# after MESSAGES messages over SMTP (python's smtplib, 50 per connection, 50 mailboxes).
#
# Usage: bench/run-fleet-rss.sh [TEMPMX_BINARY]   env: MESSAGES (default 2000), BASE
#        (first Redis port, default 21300; the appliance uses BASE+25..BASE+81)
# Stops only the processes it started (by PID) and removes its temporary directory.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TEMPMX=${1:-${CARGO_TARGET_DIR:-$REPO/target}/release/tempmx}
MESSAGES=${MESSAGES:-2000} BASE=${BASE:-21300}
DIR=$(mktemp -d -t tempmx-fleet-rss.XXXXXX)
CLUSTER_PIDS=() APP=
stop() {
    if [ -n "$APP" ]; then kill "$APP" 2>/dev/null || true; wait "$APP" 2>/dev/null || true; fi
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap stop EXIT
. "$REPO/ops/fleet/cluster.sh"
start_cluster "$BASE" "$DIR" 2000 >/dev/null
printf '[fleet]\nredis = ["redis://127.0.0.1:%s"]\nnode = "mx-rss"\n' "$BASE" >"$DIR/a.toml"
SMTP=$((BASE + 25)) HTTP=$((BASE + 80))
"$TEMPMX" serve --config "$DIR/a.toml" --smtp "127.0.0.1:$SMTP" --http "127.0.0.1:$HTTP" \
    --admin "127.0.0.1:$((BASE + 81))" --dns "127.0.0.1:$((BASE + 53))" 2>"$DIR/log" &
APP=$!
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$HTTP/api/v1/domains" >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 5
rss() { awk '/^VmRSS/ {print $2}' "/proc/$APP/status"; }
echo "idle_rss_kib $(rss)"
python3 - "$MESSAGES" "$SMTP" <<'PY'
import smtplib, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
s = None
for i in range(n):
    if i % 50 == 0:
        if s:
            s.quit()
        s = smtplib.SMTP("127.0.0.1", port)
    rcpt = "box%d@tempmx.test" % (i % 50)
    body = "Subject: rss %d\r\nFrom: a@sender.example\r\nTo: %s\r\n\r\n" % (i, rcpt)
    s.sendmail("a@sender.example", [rcpt], body + ("line of text %d\r\n" % i) * 40)
s.quit()
PY
sleep 2
echo "after_${MESSAGES}_rss_kib $(rss)"
