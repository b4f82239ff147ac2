#!/usr/bin/env bash
# One reproducible SMTP table: tempmx vs smtp-sink vs full Postfix, each driven by
# Postfix smtp-source and by tempmx-bench, in one run on this machine.
#
# Usage: bench/run-smtp-table.sh [TEMPMX_BINARY]      (default: target/release/tempmx)
#   env: BENCH=path/to/tempmx-bench (default: target/release/tempmx-bench)
#        SERVERS="tempmx sink postfix"   GENERATORS="smtp-source tempmx-bench"
#        (add tempmx-bench-pipelined to let tempmx-bench pipeline; smtp-source cannot)
#        RUNS, TARGET_S, SESSIONS, MSG_LEN, VARIANTS: passed to smtp-anchors.sh
#        TEMPMX_ARGS: extra `tempmx serve` arguments, e.g. "--config epoll-1core.toml"
#        TEMPMX_NAME: the name tempmx rows get in the table (default tempmx)
#
# How: starts `tempmx serve` on free loopback ports, then runs
# ../shared/anchors/smtp-anchors.sh once per generator with ANCHORS="sink postfix" and
# tempmx as its EXTRA_SMTP server (persist and churn variants). For tempmx-bench the
# anchors script runs smtp-source-compat.sh in place of smtp-source, so servers,
# calibration and CPU accounting are the same for both generators. Needs root (the
# anchors start smtp-sink and Postfix as root, dropping privileges). Stops only the
# processes it started. Raw RESULT/SUMMARY lines are kept in $OUT_DIR.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ANCHORS_DIR=${ANCHORS_DIR:-$REPO/../shared/anchors}
. "$ANCHORS_DIR/lib-measure.sh"   # pick_port, wait_tcp_port, stop_pid

TEMPMX=${1:-$REPO/target/release/tempmx}
BENCH=${BENCH:-$REPO/target/release/tempmx-bench}
SERVERS=${SERVERS:-"tempmx sink postfix"}
GENERATORS=${GENERATORS:-"smtp-source tempmx-bench"}
DOMAIN=tempmx.test                      # tempmx accepts it by default; sink/postfix take any
OUT_DIR=${OUT_DIR:-$(mktemp -d -t smtp-table.XXXXXX)}
mkdir -p "$OUT_DIR" || exit 1
export RUNS=${RUNS:-3} TARGET_S=${TARGET_S:-10} SESSIONS=${SESSIONS:-20} MSG_LEN=${MSG_LEN:-4096}
export VARIANTS=${VARIANTS:-"persist churn"}

log() { echo "[smtp-table] $*" >&2; }
TEMPMX_PID=""
trap 'stop_pid "$TEMPMX_PID"' EXIT
trap 'exit 130' INT TERM

[ -x "$BENCH" ] || { log "tempmx-bench not found at $BENCH (cargo build --release -p tempmx-bench, or set BENCH)"; exit 1; }

start_tempmx() {
  if [ ! -x "$TEMPMX" ]; then log "no tempmx binary at $TEMPMX: tempmx left out"; return 1; fi
  local smtp http admin dns
  smtp=$(pick_port 2600 tcp) && http=$(pick_port 8090 tcp) && admin=$(pick_port $((http + 1)) tcp) &&
    dns=$(pick_port 5400 both) || { log "no free ports for tempmx"; return 1; }
  "$TEMPMX" serve --smtp "127.0.0.1:$smtp" --http "127.0.0.1:$http" --admin "127.0.0.1:$admin" \
    --dns "127.0.0.1:$dns" ${TEMPMX_ARGS:-} >"$OUT_DIR/tempmx.log" 2>&1 &
  TEMPMX_PID=$!
  wait_tcp_port "$smtp" 20 || { log "tempmx did not listen on $smtp (see $OUT_DIR/tempmx.log)"; return 1; }
  TEMPMX_SMTP=127.0.0.1:$smtp
  log "tempmx serve pid $TEMPMX_PID, smtp $TEMPMX_SMTP"
}

anchors=""
for s in $SERVERS; do case $s in sink|postfix) anchors="$anchors $s" ;; esac; done
extra=()
case " $SERVERS " in *" tempmx "*)
  start_tempmx && extra=(EXTRA_SMTP="$TEMPMX_SMTP" EXTRA_SMTP_PID="$TEMPMX_PID" EXTRA_NAME="${TEMPMX_NAME:-tempmx}") ;;
esac
[ -n "${anchors// /}" ] || anchors=none
if [ "$anchors" = none ] && [ ${#extra[@]} -eq 0 ]; then log "no server to measure"; exit 1; fi

for gen in $GENERATORS; do
  log "generator $gen: anchors '$anchors' ${extra[*]:+and tempmx}"
  genv=()
  case $gen in
    smtp-source) ;;
    tempmx-bench) genv=(SMTP_SOURCE="$HERE/smtp-source-compat.sh" BENCH="$BENCH") ;;
    tempmx-bench-pipelined) genv=(SMTP_SOURCE="$HERE/smtp-source-compat.sh" BENCH="$BENCH" BENCH_PIPELINING=1) ;;
    *) log "unknown generator $gen"; continue ;;
  esac
  mkdir -p "$OUT_DIR/$gen"
  env ANCHORS="$anchors" DOMAIN="$DOMAIN" BENCH_REPORT_DIR="$OUT_DIR/$gen" "${genv[@]}" "${extra[@]}" \
    "$ANCHORS_DIR/smtp-anchors.sh" >"$OUT_DIR/$gen.out"
done

# One table from every generator's RESULT/SUMMARY lines.
echo "SMTP, ${SESSIONS} sessions, body ${MSG_LEN} B, 1 recipient; median (min-max) of ${RUNS} runs; $(date -u +%F)"
echo
echo "| server | variant | generator | msg/s | msgs per server CPU-s | generator CPU us/msg | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for gen in $GENERATORS; do
  [ -f "$OUT_DIR/$gen.out" ] || continue
  awk -v gen="$gen" '
    function kv(line, key,   i, n, a) { n = split(line, a, " ");
      for (i = 1; i <= n; i++) if (index(a[i], key "=") == 1) return substr(a[i], length(key) + 2); return "" }
    function med(list,   n, a, i, j, t) { n = split(list, a, " ");
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      if (n == 0) return "-"; return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    /^RESULT/ { k = kv($0, "anchor") "|" kv($0, "variant")
      cpu[k] = cpu[k] " " (kv($0, "gen_cpu_s") * 1e6 / kv($0, "msgs"))
      e = kv($0, "src_errors"); if (e != "0") err[k] = err[k] " " e }
    /^SUMMARY/ { k = kv($0, "anchor") "|" kv($0, "variant"); order[++n] = k
      split(kv($0, "msg_per_s(med/min/max)"), r, "/"); split(kv($0, "msgs_per_srv_cpu_s(med/min/max)"), c, "/")
      rate[k] = sprintf("%s (%s-%s)", r[1], r[2], r[3]); eff[k] = c[1] }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, "|")
      printf "| %s | %s | %s | %s | %s | %.1f | %s |\n", p[1], p[2], gen, rate[k], eff[k], med(cpu[k]), (err[k] == "" ? "0" : err[k]) } }
  ' "$OUT_DIR/$gen.out"
done
echo
log "raw lines and tempmx-bench JSON reports: $OUT_DIR"
