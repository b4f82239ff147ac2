#!/usr/bin/env bash
# Fleet benchmark (issue 15): a real 6-process Redis Cluster on loopback (3 primaries + 3
# replicas of Debian's redis-server) and two release `tempmx serve` appliances sharing it.
#
# Usage: bench/run-fleet.sh [TEMPMX_BINARY [TEMPMX_BENCH_BINARY]]
#   env: MESSAGES (per appliance, default 20000), CONNECTIONS (per appliance, default 16),
#        SIZE (default 4k), MAILBOXES (recipients drawn from, default 2000),
#        E2E_MESSAGES (default 2000), FLOOD_SECS (flood beside the latency run, default 20),
#        ACK (primary | replicas:N, default primary), BASE (first Redis port, default 17200),
#        FLEET_EXTRA (more `[fleet]` lines for both appliances, e.g. "compress = false"),
#        FLOOD_RATE (messages/s per appliance for the flood beside the latency run, open
#        loop; default: closed loop, as fast as the appliances answer)
#
# Phases, each reported on its own:
# 1. Flood: tempmx-bench floods both appliances over SMTP at once (closed loop). Around it
#    the script reads the CPU time of the 8 server processes (/proc/PID/stat), every
#    primary's INFO commandstats and used_memory, and both appliances' fleet write
#    counters (/metrics). Reports msgs/s, messages per server CPU-second, client commands
#    and pipelined round trips per message, and Redis bytes per stored message against
#    the message's size (every message is stored: the TTL is an hour and no mailbox
#    reaches its cap).
# 2. Cross-node latency: `tempmx-bench e2e` holds SSE streams on appliance A and sends
#    each message to appliance B; "250 -> visible" is the time from B's 250 to A's event.
#    Run idle, then beside a FLOOD_SECS flood of both appliances (closed loop, which
#    keeps every CPU busy, or paced at FLOOD_RATE, to see the latency below saturation).
# Stops only the processes it started (by PID) and removes its temporary directory.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
TEMPMX=${1:-$TARGET/release/tempmx}
BENCH=${2:-$TARGET/release/tempmx-bench}
MESSAGES=${MESSAGES:-20000} CONNECTIONS=${CONNECTIONS:-16} SIZE=${SIZE:-4k}
MAILBOXES=${MAILBOXES:-2000} E2E_MESSAGES=${E2E_MESSAGES:-2000} FLOOD_SECS=${FLOOD_SECS:-20}
ACK=${ACK:-primary} BASE=${BASE:-17200}
for tool in redis-server redis-cli curl python3 "$TEMPMX" "$BENCH"; do
    command -v "$tool" >/dev/null || { echo "run-fleet: $tool missing" >&2; exit 1; }
done

DIR=$(mktemp -d -t tempmx-fleet-bench.XXXXXX)
CLUSTER_PIDS=()
APPS=()
stop() {
    for pid in "${APPS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${APPS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap stop EXIT INT TERM
log() { echo "[fleet-bench] $*" >&2; }

# The cluster, as ops/fleet/demo.sh starts it (no persistence: memory is what is measured).
. "$REPO/ops/fleet/cluster.sh"
start_cluster "$BASE" "$DIR" 5000
# Replicas must be in sync before anything is measured.
sleep 2
log "cluster up on 127.0.0.1:$BASE-$((BASE + 5))"

# Two appliances, one ingress core each (the machine has two cores for everything).
APP_PORTS=()
for n in a b; do
    off=$([ "$n" = a ] && echo 100 || echo 110)
    smtp=$((BASE + off)) http=$((BASE + off + 1)) admin=$((BASE + off + 2)) dns=$((BASE + off + 3))
    cat >"$DIR/$n.toml" <<EOF
[ingress]
listen = "127.0.0.1:$smtp"
cores = 1
connections_per_ip_max = 1000
[ingress.auth]
mode = "off"
[ingress.limits]
messages_per_connection_max = 1000000
[http]
listen = "127.0.0.1:$http"
[admin]
listen = "127.0.0.1:$admin"
[dns]
listen = "127.0.0.1:$dns"
[api]
create_burst = 100000
create_per_minute = 100000
subscribers_per_ip_max = 10000
reads_per_second = 1000000
reads_burst = 1000000
[log]
format = "json"
filter = "warn"
[fleet]
redis = ["redis://127.0.0.1:$BASE"]
node = "mx-$n"
ack = "$ACK"
${FLEET_EXTRA:-}
EOF
    "$TEMPMX" serve --config "$DIR/$n.toml" >"$DIR/$n.log" 2>&1 &
    APPS+=($!)
    APP_PORTS+=("$smtp $http $admin")
done
read -r SMTP_A HTTP_A ADMIN_A <<<"${APP_PORTS[0]}"
read -r SMTP_B HTTP_B ADMIN_B <<<"${APP_PORTS[1]}"
for p in "$HTTP_A" "$HTTP_B"; do
    for _ in $(seq 1 300); do curl -sf "127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf "127.0.0.1:$p/healthz" >/dev/null || { log "appliance on :$p did not start"; cat "$DIR"/*.log >&2; exit 1; }
done
# Both are ours (alive) and in fleet mode (their series carry the node label).
for i in 0 1; do
    kill -0 "${APPS[$i]}" || { log "appliance $i exited"; cat "$DIR"/*.log >&2; exit 1; }
done
for n in a b; do
    port=$([ "$n" = a ] && echo $((BASE + 102)) || echo $((BASE + 112)))
    # Read the whole scrape first: `grep -q` would close the pipe early (pipefail).
    scrape=$(curl -s "127.0.0.1:$port/metrics")
    grep -q "node=\"mx-$n\"" <<<"$scrape" ||
        { log "mx-$n is not in fleet mode"; cat "$DIR/$n.log" >&2; exit 1; }
done
log "appliances mx-a (SMTP :$SMTP_A, API :$HTTP_A) and mx-b (SMTP :$SMTP_B, API :$HTTP_B) up"

PRIMARIES=()
for i in 0 1 2 3 4 5; do
    redis-cli -p $((BASE + i)) info replication | grep -q role:master && PRIMARIES+=($((BASE + i)))
done

# One snapshot of everything measured, as a JSON object on one line.
snapshot() {
    local pid
    {
        for pid in "${APPS[@]}"; do echo "cpu_tempmx $(awk '{ print $14 + $15 }' "/proc/$pid/stat")"; done
        for pid in "${CLUSTER_PIDS[@]}"; do echo "cpu_redis $(awk '{ print $14 + $15 }' "/proc/$pid/stat")"; done
        for p in "${PRIMARIES[@]}"; do
            redis-cli -p "$p" info memory |
                grep -E '^(used_memory|mem_replication_backlog|mem_clients_slaves|mem_clients_normal):' | tr -d '\r' | tr ':' ' '
            redis-cli -p "$p" info commandstats | grep '^cmdstat_' | sed 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/cmd_\1 \2/'
        done
        for a in "$ADMIN_A" "$ADMIN_B"; do
            curl -s "127.0.0.1:$a/metrics" | grep -E '^tempmx_fleet_write_[a-z]+_total|^tempmx_smtp_messages_accepted_total' |
                sed 's/{[^}]*}//'
        done
    } | python3 -c '
import json, sys
totals = {}
for line in sys.stdin:
    key, value = line.split()
    totals[key] = totals.get(key, 0) + float(value)
print(json.dumps(totals))'
}

flood() {   # extra tempmx-bench smtp args; leaves both reports (JSON) in $DIR/flood-[ab].json
    "$BENCH" smtp "127.0.0.1:$SMTP_A" -c "$CONNECTIONS" -s "$SIZE" --mailboxes "$MAILBOXES" --json "$@" >"$DIR/flood-a.json" &
    local fa=$!
    "$BENCH" smtp "127.0.0.1:$SMTP_B" -c "$CONNECTIONS" -s "$SIZE" --mailboxes "$MAILBOXES" --json "$@" >"$DIR/flood-b.json" &
    local fb=$!
    wait "$fa" "$fb"
}

log "phase 1: flood, $MESSAGES messages of $SIZE to each appliance over $CONNECTIONS connections each"
before=$(snapshot)
t0=$(date +%s.%N)
flood -m "$MESSAGES"
t1=$(date +%s.%N)
after=$(snapshot)
python3 - "$before" "$after" "$t0" "$t1" "$(getconf CLK_TCK)" "$SIZE" "$DIR"/flood-[ab].json <<'PY'
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
wall = float(sys.argv[4]) - float(sys.argv[3])
tck = int(sys.argv[5])
d = lambda k: after.get(k, 0) - before.get(k, 0)
reports = [json.load(open(f)) for f in sys.argv[7:]]
accepted = d("tempmx_smtp_messages_accepted_total")
msgs = d("tempmx_fleet_write_messages_total")
cpu_tempmx, cpu_redis = d("cpu_tempmx") / tck, d("cpu_redis") / tck
cpu = cpu_tempmx + cpu_redis
client = {k[4:]: d(k) for k in after if k.startswith("cmd_") and d(k) > 0}
# SPUBLISH runs inside FCALL tempmx_put (builds before 2026-12-07 sent it as a command of its own).
issued = sum(v for k, v in client.items() if k in ("fcall", "wait"))
size = sys.argv[6]
raw = int(size[:-1]) * 1024 if size.endswith("k") else int(size)
print(f"flood: {accepted:.0f} messages accepted (250) in {wall:.1f} s by both appliances")
for r in reports:
    print(f"  client report {r['target']}: {r['ok_per_s']:.0f} msgs/s, 250 p50 {r['latency']['p50_us'] / 1000:.1f} ms p99 {r['latency']['p99_us'] / 1000:.1f} ms, replies {r['replies']}, errors {r['errors']}")
print(f"msgs/s (both appliances): {accepted / wall:.0f}")
print(f"server CPU: {cpu:.1f} s (2 tempmx {cpu_tempmx:.1f} s + 6 redis-server {cpu_redis:.1f} s); messages per server CPU-second: {accepted / max(cpu, 1e-9):.0f}"
      f" (per tempmx CPU-second {accepted / max(cpu_tempmx, 1e-9):.0f}, per redis CPU-second {accepted / max(cpu_redis, 1e-9):.0f})")
print(f"write batches {d('tempmx_fleet_write_batches_total'):.0f}, pipelines {d('tempmx_fleet_write_pipelines_total'):.0f} for {msgs:.0f} messages:"
      f" {d('tempmx_fleet_write_pipelines_total') / max(msgs, 1):.3f} round trips per message,"
      f" {msgs / max(d('tempmx_fleet_write_batches_total'), 1):.1f} messages per batch")
print(f"client commands per message (FCALL + WAIT): {issued / max(msgs, 1):.2f}")
print(f"all commands per message on the primaries (script-internal ones included): {sum(client.values()) / max(msgs, 1):.2f}")
print("  by command: " + ", ".join(f"{k} {v / max(msgs, 1):.2f}" for k, v in sorted(client.items(), key=lambda kv: -kv[1])))
mem = d("used_memory")
print(f"Redis used_memory on the primaries: +{mem / 2**20:.1f} MiB for {msgs:.0f} stored messages:"
      f" {mem / max(msgs, 1):.0f} bytes per message = {mem / max(msgs, 1) / raw:.2f}x the {raw}-byte message (replicas hold as much again)")
# The replication backlog (up to 1 MiB per primary, filled by the run's writes) and the
# client buffers are fixed costs of the run, not of the messages stored.
fixed = d("mem_replication_backlog") + d("mem_clients_slaves") + d("mem_clients_normal")
print(f"  less the replication backlog and client buffers ({fixed / 2**20:+.1f} MiB): {(mem - fixed) / max(msgs, 1):.0f} bytes per message"
      f" = {(mem - fixed) / max(msgs, 1) / raw:.2f}x the {raw}-byte message")
PY

# Prints the e2e report's latencies (send -> visible, send -> 250, 250 -> visible).
E2E_REPORT=$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
for name, l in [("send -> visible", r["latency"])] + sorted(r["extra"].items()):
    print(f"  {name}: p50 {l['p50_us'] / 1000:.2f} ms, p90 {l['p90_us'] / 1000:.2f} ms, p99 {l['p99_us'] / 1000:.2f} ms ({l['samples']} samples)")
print(f"  ok {r['ok']} of {r['attempted']}, errors {r['errors']}")
PY
)
e2e() {
    "$BENCH" e2e --smtp "127.0.0.1:$SMTP_B" --http "127.0.0.1:$HTTP_A" --mailboxes 10 -s "$SIZE" \
        -m "$E2E_MESSAGES" --json | python3 -c "$E2E_REPORT"
}

log "phase 2: cross-node latency, SSE on mx-a, mail to mx-b, $E2E_MESSAGES messages, idle"
echo "cross-node latency, idle (SSE on mx-a, SMTP to mx-b):"
e2e
PACE=() PACED=""
if [ -n "${FLOOD_RATE:-}" ]; then PACE=(--rate "$FLOOD_RATE") PACED=", $FLOOD_RATE msgs/s each (open loop)"; fi
log "phase 2b: the same beside a ${FLOOD_SECS}s flood of both appliances$PACED"
flood --duration "${FLOOD_SECS}s" "${PACE[@]}" >/dev/null &
FLOOD=$!
sleep 1
echo "cross-node latency beside a flood of both appliances$PACED:"
e2e
wait "$FLOOD"
