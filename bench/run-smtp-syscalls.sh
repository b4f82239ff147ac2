#!/usr/bin/env bash
# Syscalls per message and user/kernel CPU split of `tempmx serve`, per backend config and
# per variant (persist: many messages per connection; churn: one per connection), over a
# fixed message count from Postfix smtp-source (20 sessions, 4 KiB bodies).
#
# Usage: bench/run-smtp-syscalls.sh [TEMPMX_BINARY]   (default: target/release/tempmx)
#   env: CONFIGS="uring=bench/configs/uring.toml epoll=bench/configs/epoll.toml"
#        MSGS (default 20000), SESSIONS (20), MSG_LEN (4096)
#
# How: per config, starts tempmx on a free loopback port; per variant, one run without
# tracing reads the server's utime/stime from /proc (user vs kernel CPU), then one run under
# `strace -c -f` counts every syscall of every thread (tracing slows the server; only the
# counts are used). Prints one line per (config, variant). Stops only what it started.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ANCHORS_DIR=${ANCHORS_DIR:-$REPO/../shared/anchors}
. "$ANCHORS_DIR/lib-measure.sh"   # pick_port, wait_tcp_port, stop_pid
TEMPMX=${1:-$REPO/target/release/tempmx}
CONFIGS=${CONFIGS:-"uring=$REPO/bench/configs/uring.toml epoll=$REPO/bench/configs/epoll.toml"}
MSGS=${MSGS:-20000} SESSIONS=${SESSIONS:-20} MSG_LEN=${MSG_LEN:-4096}
SMTP_SOURCE=${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}
WORK=$(mktemp -d -t smtp-syscalls.XXXXXX)
PID=""
trap 'stop_pid "$PID"; rm -rf "$WORK"' EXIT
log() { echo "[smtp-syscalls] $*" >&2; }

ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
source_run() {   # variant port
  local d=""; [ "$1" = persist ] && d="-d"
  "$SMTP_SOURCE" $d -N -s "$SESSIONS" -m "$MSGS" -l "$MSG_LEN" -M tempmx.test \
    -f sender@tempmx.test -t rcpt@tempmx.test "127.0.0.1:$2" >/dev/null 2>&1
}

echo "| config | variant | msgs | user CPU s | kernel CPU s | syscalls/msg | io_uring_enter/msg | epoll_wait/msg | top syscalls (calls/msg) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for pair in $CONFIGS; do
  name=${pair%%=*} config=${pair#*=}
  smtp=$(pick_port 2700 tcp) http=$(pick_port 8190 tcp) admin=$(pick_port 8290 tcp) dns=$(pick_port 5500 both)
  "$TEMPMX" serve --config "$config" --smtp "127.0.0.1:$smtp" --http "127.0.0.1:$http" \
    --admin "127.0.0.1:$admin" --dns "127.0.0.1:$dns" >"$WORK/$name.log" 2>&1 &
  PID=$!
  wait_tcp_port "$smtp" 20 || { log "$name did not listen"; stop_pid "$PID"; continue; }
  for variant in persist churn; do
    read -r u0 s0 < <(ticks "$PID")
    source_run "$variant" "$smtp"
    read -r u1 s1 < <(ticks "$PID")
    strace -c -f -p "$PID" -o "$WORK/$name-$variant.strace" 2>/dev/null &
    spid=$!
    sleep 1
    source_run "$variant" "$smtp"
    kill -INT "$spid"; wait "$spid" 2>/dev/null
    awk -v name="$name" -v variant="$variant" -v n="$MSGS" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
        -v hz="$(getconf CLK_TCK)" '
      # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[$NF] = $4; total += $4 }
      END { top = ""; for (k in c) list[k] = c[k]
        for (i = 0; i < 4; i++) { best = ""; for (k in list) if (best == "" || list[k] > list[best]) best = k
          if (best == "") break; top = top sprintf("%s %.2f, ", best, list[best] / n); delete list[best] }
        printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n", name, variant, n, u / hz, s / hz,
          total / n, c["io_uring_enter"] / n, (c["epoll_wait"] + c["epoll_pwait"] + c["epoll_pwait2"]) / n, top }
    ' "$WORK/$name-$variant.strace"
  done
  stop_pid "$PID"; PID=""
done
