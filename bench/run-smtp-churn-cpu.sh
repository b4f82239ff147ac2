#!/usr/bin/env bash
# Messages per server CPU-second of `tempmx serve` on churn (one message per connection, Postfix
# smtp-source, 20 sessions, 4 KiB), per backend, alternating 5,000- and 15,000-connection runs
# against one server process, to see whether the cost per connection grows with the count
# (with VARIANT=persist: the same over persistent connections, COUNTS then counts messages).
# User and kernel CPU are printed apart: the kernel's share is the loopback TCP work every
# server pays, the user share what the server's own code costs.
# Usage: bench/run-smtp-churn-cpu.sh   (needs target/release/tempmx; stops only what it started)
#   env: SERVERS (default "uring epoll"; "null" adds the null io_uring responder, built by
#        `cargo build --release -p tempmx-bench --example null_smtp_uring`),
#        COUNTS (connections per run, default "5000 15000 5000 15000"),
#        TEMPMX (the binary, default target/release/tempmx),
#        VARIANT (churn, the default, or persist: smtp-source -d, many messages per session)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
. ../shared/anchors/lib-measure.sh   # pick_port, wait_tcp_port, stop_pid
case ${VARIANT:-churn} in
  churn) dflag="" ;;
  persist) dflag="-d" ;;
  *) echo "VARIANT must be churn or persist, not '$VARIANT'" >&2; exit 2 ;;
esac
PID=""
trap 'stop_pid "$PID"' EXIT
for name in ${SERVERS:-uring epoll}; do
  smtp=$(pick_port 2800 tcp) http=$(pick_port 8590 tcp) admin=$(pick_port 8690 tcp) dns=$(pick_port 5700 both)
  if [ "$name" = null ]; then
    target/release/examples/null_smtp_uring 127.0.0.1:$smtp 2 >/dev/null 2>&1 &
  else
    "${TEMPMX:-target/release/tempmx}" serve --config bench/configs/$name.toml --smtp 127.0.0.1:$smtp --http 127.0.0.1:$http --admin 127.0.0.1:$admin --dns 127.0.0.1:$dns >/dev/null 2>&1 &
  fi
  PID=$!
  wait_tcp_port $smtp 20
  for n in ${COUNTS:-5000 15000 5000 15000}; do
    read -r u0 s0 < <(awk '{ print $14, $15 }' /proc/$PID/stat)
    t0=$(date +%s.%N)
    /usr/sbin/smtp-source $dflag -N -s 20 -m $n -l 4096 -M tempmx.test -f s@tempmx.test -t r@tempmx.test 127.0.0.1:$smtp >/dev/null 2>&1
    t1=$(date +%s.%N)
    read -r u1 s1 < <(awk '{ print $14, $15 }' /proc/$PID/stat)
    hz=$(getconf CLK_TCK)
    echo "$name n=$n user_ticks=$((u1 - u0)) sys_ticks=$((s1 - s0)) user_us_per_msg=$(( (u1 - u0) * 1000000 / hz / n )) sys_us_per_msg=$(( (s1 - s0) * 1000000 / hz / n )) msgs_per_cpu_s=$((n * hz / (u1 - u0 + s1 - s0))) wall_s=$(echo "$t1 - $t0" | bc)"
  done
  stop_pid $PID
  PID=""
done
