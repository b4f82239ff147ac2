#!/usr/bin/env bash
# Local fleet demo: a 6-node Redis Cluster on loopback (3 primaries + 3 replicas, Debian's
# redis-server) and two tempmx appliances sharing it. Ctrl-C stops everything it started
# (by PID) and removes its temporary directory.
#
#   ops/fleet/demo.sh            # builds tempmx (release) if needed, then runs
#   TEMPMX=/path/to/tempmx ops/fleet/demo.sh
#
# Appliance A: SMTP 127.0.0.1:2525, API http://127.0.0.1:8080, admin :8081, DNS :5353
# Appliance B: SMTP 127.0.0.1:2526, API http://127.0.0.1:8090, admin :8091, DNS :5354
# Redis: 127.0.0.1:17000-17005 (cluster bus 27000-27005).
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "demo: $tool missing (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
if [ -z "${TEMPMX:-}" ]; then
    cargo build --release -p tempmx --bin tempmx
    TEMPMX="${CARGO_TARGET_DIR:-target}/release/tempmx"
fi

BASE=${FLEET_DEMO_PORT:-17000}
DIR=$(mktemp -d -t tempmx-fleet-demo.XXXXXX)
CLUSTER_PIDS=()
APPS=()
stop() {
    # The appliances stop (gracefully) before the cluster they write to.
    for pid in "${APPS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${APPS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap stop EXIT INT TERM

. ops/fleet/cluster.sh
start_cluster "$BASE" "$DIR" 2000
echo "demo: Redis Cluster up on 127.0.0.1:$BASE-$((BASE + 5))"

# Each appliance needs its own node name (ids, membership); the host name is shared here.
for n in a b; do
    printf '[fleet]\nredis = ["redis://127.0.0.1:%s"]\nnode = "mx-%s"\n' "$BASE" "$n" >"$DIR/$n.toml"
done
"$TEMPMX" serve --config "$DIR/a.toml" --smtp 127.0.0.1:2525 --http 127.0.0.1:8080 \
    --admin 127.0.0.1:8081 --dns 127.0.0.1:5353 &
APPS+=($!)
"$TEMPMX" serve --config "$DIR/b.toml" --smtp 127.0.0.1:2526 --http 127.0.0.1:8090 \
    --admin 127.0.0.1:8091 --dns 127.0.0.1:5354 &
APPS+=($!)
echo "demo: appliances A (SMTP :2525, API :8080) and B (SMTP :2526, API :8090) share the cluster"
echo "demo: try:"
echo "  curl -s -XPOST localhost:8080/api/v1/mailboxes -d '{\"local_part\":\"demo\"}'   # on A"
echo "  swaks --server 127.0.0.1:2526 --to demo@tempmx.test                      # mail to B"
echo "  curl -s -H 'Authorization: Bearer TOKEN' localhost:8080/api/v1/mailboxes/demo@tempmx.test/messages"
echo "  tempmx fleet status --admin http://127.0.0.1:8091"
wait -n
