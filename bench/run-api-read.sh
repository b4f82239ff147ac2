#!/usr/bin/env bash
# API read path, before against after: `GET …/messages?limit=50` (listing) and
# `GET …/messages/{id}` (one message) measured with wrk on two tempmx binaries in turn,
# alternating, in one sitting.
#
# Usage: bench/run-api-read.sh BEFORE_BINARY AFTER_BINARY
#   env: ROUNDS (default 3), DURATION (wrk -d, default 8s), CONNECTIONS (wrk -c, default 20),
#        MESSAGES (default 100, the mailbox's size)
#
# How: per round and binary, starts `tempmx serve --config bench/configs/api-read.toml` on
# free loopback ports, creates a mailbox over the API, delivers MESSAGES copies of a
# multipart message (HTML and text, encoded-word Subject and From) with Postfix
# smtp-source, then runs wrk against the listing and against one message, reading the
# server's CPU time from /proc around each wrk run. Prints one line per run and the medians.
# Stops only the processes it started.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ANCHORS_DIR=${ANCHORS_DIR:-$REPO/../shared/anchors}
. "$ANCHORS_DIR/lib-measure.sh"   # pick_port, wait_tcp_port, stop_pid
BEFORE=${1:?usage: run-api-read.sh BEFORE_BINARY AFTER_BINARY}
AFTER=${2:?usage: run-api-read.sh BEFORE_BINARY AFTER_BINARY}
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-20} MESSAGES=${MESSAGES:-100}
SMTP_SOURCE=${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}
WORK=$(mktemp -d -t api-read.XXXXXX)
PID=""
trap 'stop_pid "$PID"; rm -rf "$WORK"' EXIT
log() { echo "[api-read] $*" >&2; }

# A typical sign-up mail: multipart/alternative, encoded words, a code in both parts.
{
  printf 'From: =?UTF-8?Q?Acme_S=C3=A9curit=C3=A9?= <no-reply@acme.example>\r\n'
  printf 'Subject: =?UTF-8?B?Vm90cmUgY29kZSBkZSB2w6lyaWZpY2F0aW9u?=\r\n'
  printf 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n'
  printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
  for i in $(seq 1 20); do printf 'Your verification code is 482913. Line %02d of the plain part.\r\n' "$i"; done
  printf -- '--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n'
  for i in $(seq 1 30); do printf '<p style="font-family:sans-serif">Your code: <b>482913</b> (paragraph %02d)</p>\r\n' "$i"; done
  printf '</body></html>\r\n--b1--\r\n'
} | tr -d '\r' >"$WORK/msg.eml"   # smtp-source -F ends each line with CR LF itself

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

measure() {   # name binary
  local smtp http admin dns created address token id
  smtp=$(pick_port 2900 tcp) http=$(pick_port 8790 tcp) admin=$(pick_port 8890 tcp) dns=$(pick_port 5800 both)
  "$2" serve --config "$REPO/bench/configs/api-read.toml" --smtp "127.0.0.1:$smtp" \
    --http "127.0.0.1:$http" --admin "127.0.0.1:$admin" --dns "127.0.0.1:$dns" >>"$WORK/$1.log" 2>&1 &
  PID=$!
  wait_tcp_port "$http" 20 || { log "$1 did not listen (see $WORK/$1.log)"; return 1; }
  created=$(curl -s -X POST "127.0.0.1:$http/api/v1/mailboxes" -H 'content-type: application/json' -d '{}')
  address=$(jq -r .address <<<"$created") token=$(jq -r .token <<<"$created")
  "$SMTP_SOURCE" -s 1 -m "$MESSAGES" -F "$WORK/msg.eml" -f sender@acme.example -t "$address" \
    "127.0.0.1:$smtp" >/dev/null 2>&1
  local base="http://127.0.0.1:$http/api/v1/mailboxes/$address/messages"
  id=$(curl -s -H "authorization: Bearer $token" "$base?limit=1" | jq -r '.messages[0].id')
  [ -n "$id" ] && [ "$id" != null ] || { log "$1: no message listed"; stop_pid "$PID"; PID=""; return 1; }
  local what url t0 t1 rps
  for what in listing message; do
    case $what in listing) url="$base?limit=50" ;; message) url="$base/$id" ;; esac
    t0=$(ticks "$PID")
    rps=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "authorization: Bearer $token" "$url" |
      awk '/^Requests\/sec/ { print $2 }')
    t1=$(ticks "$PID")
    echo "RUN name=$1 what=$what rps=$rps srv_cpu_s=$(echo "scale=2; ($t1 - $t0) / $(getconf CLK_TCK)" | bc)"
  done
  stop_pid "$PID"
  PID=""
}

for round in $(seq 1 "$ROUNDS"); do
  log "round $round"
  measure before "$BEFORE"
  measure after "$AFTER"
done | tee "$WORK/runs"
d=${DURATION%s}
awk -v d="$d" '
  function kv(key,   i) { for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2) }
  function med(list,   n, a, i, j, t) { n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  /^RUN/ { k = kv("what") "|" kv("name"); rps[k] = rps[k] " " kv("rps")
    eff[k] = eff[k] " " (kv("rps") * d / kv("srv_cpu_s")) }
  END { print "| request | binary | requests/s (median) | requests per server CPU-s (median) |"
    print "| --- | --- | ---: | ---: |"
    split("listing|before listing|after message|before message|after", ks, " ")
    for (i = 1; i <= 4; i++) { split(ks[i], p, "|")
      printf "| %s | %s | %.0f | %.0f |\n", p[1], p[2], med(rps[ks[i]]), med(eff[ks[i]]) } }
' "$WORK/runs"
