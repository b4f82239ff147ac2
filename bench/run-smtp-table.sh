#!/usr/bin/env bash
# One reproducible SMTP table: tempmx vs smtp-sink vs full Postfix, each driven by
# Postfix smtp-source and by tempmx-bench, in one run on this machine.
#
# Usage: bench/run-smtp-table.sh [TEMPMX_BINARY]      (default: target/release/tempmx)
#   env: BENCH=path/to/tempmx-bench (default: target/release/tempmx-bench)
#        SERVERS="tempmx sink postfix null"   GENERATORS="smtp-source tempmx-bench"
#        (add tempmx-bench-pipelined to let tempmx-bench pipeline; smtp-source cannot)
#        RUNS, TARGET_S, SESSIONS, MSG_LEN, VARIANTS: passed to smtp-anchors.sh
#        TEMPMX_ARGS: extra `tempmx serve` arguments, e.g. "--config epoll-1core.toml"
#        TEMPMX_NAME: the name tempmx rows get in the table (default tempmx)
#        TEMPMX_CONFIGS: several tempmx servers in one sitting, as name=config pairs, e.g.
#          "tempmx-uring=bench/configs/uring.toml tempmx-epoll=bench/configs/epoll.toml"
#          (each is started, measured and stopped in turn, after the anchors; overrides
#          TEMPMX_ARGS/TEMPMX_NAME); a pair may name its own binary as name=config@binary,
#          e.g. "before=bench/configs/uring.toml@/tmp/tempmx-before", to compare builds
#          in one sitting
#        NULL_SERVER: the null io_uring responder measured as "null" when SERVERS has it
#          (default target/release/examples/null_smtp_uring; build it with
#          cargo build --release -p tempmx-bench --example null_smtp_uring): the floor of
#          loopback TCP plus the thinnest io_uring loop, under any SMTP server here
#
# How: per generator, runs ../shared/anchors/smtp-anchors.sh once with ANCHORS="sink
# postfix", then once per tempmx server: starts `tempmx serve` on free loopback ports, runs
# the anchors script with ANCHORS=none and tempmx as its EXTRA_SMTP server (persist and
# churn variants), stops it. For tempmx-bench the
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
NULL_SERVER=${NULL_SERVER:-$REPO/target/release/examples/null_smtp_uring}
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

start_tempmx() {   # $1: extra `tempmx serve` arguments; $2: the binary (default $TEMPMX)
  local bin=${2:-$TEMPMX}
  if [ ! -x "$bin" ]; then log "no tempmx binary at $bin: tempmx left out"; return 1; fi
  local smtp http admin dns
  smtp=$(pick_port 2600 tcp) && http=$(pick_port 8090 tcp) && admin=$(pick_port $((http + 1)) tcp) &&
    dns=$(pick_port 5400 both) || { log "no free ports for tempmx"; return 1; }
  "$bin" serve --smtp "127.0.0.1:$smtp" --http "127.0.0.1:$http" --admin "127.0.0.1:$admin" \
    --dns "127.0.0.1:$dns" $1 >>"$OUT_DIR/tempmx.log" 2>&1 &
  TEMPMX_PID=$!
  wait_tcp_port "$smtp" 20 || { log "tempmx did not listen on $smtp (see $OUT_DIR/tempmx.log)"; return 1; }
  TEMPMX_SMTP=127.0.0.1:$smtp
  log "tempmx serve pid $TEMPMX_PID ($bin), smtp $TEMPMX_SMTP, args '$1'"
}

start_null() {
  [ -x "$NULL_SERVER" ] || { log "no null server at $NULL_SERVER: null left out"; return 1; }
  local smtp
  smtp=$(pick_port 2650 tcp) || { log "no free port for the null server"; return 1; }
  "$NULL_SERVER" "127.0.0.1:$smtp" >>"$OUT_DIR/null.log" 2>&1 &
  TEMPMX_PID=$!
  wait_tcp_port "$smtp" 20 || { log "null server did not listen on $smtp"; return 1; }
  TEMPMX_SMTP=127.0.0.1:$smtp
}

anchors=""
for s in $SERVERS; do case $s in sink|postfix) anchors="$anchors $s" ;; esac; done
[ -n "${anchors// /}" ] || anchors=none
# The tempmx servers to measure, as "name|serve arguments|binary" (binary empty: $TEMPMX).
tempmx_runs=()
case " $SERVERS " in *" tempmx "*)
  if [ -n "${TEMPMX_CONFIGS:-}" ]; then
    for pair in $TEMPMX_CONFIGS; do
      value=${pair#*=} bin=""
      case $value in *@*) bin=${value#*@} value=${value%%@*} ;; esac
      tempmx_runs+=("${pair%%=*}|--config $value|$bin")
    done
  else
    tempmx_runs+=("${TEMPMX_NAME:-tempmx}|${TEMPMX_ARGS:-}|")
  fi ;;
esac
case " $SERVERS " in *" null "*) tempmx_runs+=("null|") ;; esac
if [ "$anchors" = none ] && [ ${#tempmx_runs[@]} -eq 0 ]; then log "no server to measure"; exit 1; fi

for gen in $GENERATORS; do
  genv=()
  case $gen in
    smtp-source) ;;
    tempmx-bench) genv=(SMTP_SOURCE="$HERE/smtp-source-compat.sh" BENCH="$BENCH") ;;
    tempmx-bench-pipelined) genv=(SMTP_SOURCE="$HERE/smtp-source-compat.sh" BENCH="$BENCH" BENCH_PIPELINING=1) ;;
    *) log "unknown generator $gen"; continue ;;
  esac
  mkdir -p "$OUT_DIR/$gen"
  : >"$OUT_DIR/$gen.out"
  if [ "$anchors" != none ]; then
    log "generator $gen: anchors '$anchors'"
    env ANCHORS="$anchors" DOMAIN="$DOMAIN" BENCH_REPORT_DIR="$OUT_DIR/$gen" "${genv[@]}" \
      "$ANCHORS_DIR/smtp-anchors.sh" >>"$OUT_DIR/$gen.out"
  fi
  for run in "${tempmx_runs[@]}"; do
    name=${run%%|*}
    rest=${run#*|}
    if [ "$name" = null ]; then start_null || continue
    else start_tempmx "${rest%|*}" "${rest##*|}" || continue; fi
    log "generator $gen: $name"
    env ANCHORS=none DOMAIN="$DOMAIN" BENCH_REPORT_DIR="$OUT_DIR/$gen" "${genv[@]}" \
      EXTRA_SMTP="$TEMPMX_SMTP" EXTRA_SMTP_PID="$TEMPMX_PID" EXTRA_NAME="$name" \
      "$ANCHORS_DIR/smtp-anchors.sh" >>"$OUT_DIR/$gen.out"
    stop_pid "$TEMPMX_PID"
    TEMPMX_PID=""
  done
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
