#!/usr/bin/env bash
# Runs tempmx-bench with Postfix smtp-source's command line, so that
# ../shared/anchors/smtp-anchors.sh can drive tempmx-bench instead of smtp-source
# (SMTP_SOURCE=bench/smtp-source-compat.sh) with the same servers, calibration and
# CPU accounting. Only the options the anchors use are translated:
#   -d (keep the connection), -N (unique recipients), -s sessions, -m messages,
#   -l body length, -M helo name, -f sender, -t recipient, -r recipients, host:port.
# smtp-source does not pipeline, so neither does this by default; set
# BENCH_PIPELINING=1 to let tempmx-bench pipeline.
# -l is smtp-source's body length; its headers add 146 bytes (4096 -> 4242 on the wire,
# measured in the anchors), and tempmx-bench sizes whole messages, so 146 is added.
# The JSON report of each run goes to $BENCH_REPORT_DIR (if set). Output holds the
# word "error" only when something failed, which is what the anchors script counts.
set -u
BENCH=${BENCH:-tempmx-bench}
SMTP_SOURCE_HEADER_BYTES=146

persist=0 sessions=1 count=1 len=100 helo=localhost from="" to="" rcpts=1
OPTIND=1
while getopts "dNs:m:l:M:f:t:r:" opt; do
  case $opt in
    d) persist=1 ;;
    N) ;;  # tempmx-bench always uses a fresh address per recipient (--mailboxes 0)
    s) sessions=$OPTARG ;;
    m) count=$OPTARG ;;
    l) len=$OPTARG ;;
    M) helo=$OPTARG ;;
    f) from=$OPTARG ;;
    t) to=$OPTARG ;;
    r) rcpts=$OPTARG ;;
    *) echo "smtp-source-compat: error: unsupported option" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "smtp-source-compat: error: expected one host:port" >&2; exit 2; }
target=$1
[ -n "$from" ] || from="foo@$helo"
[ -n "$to" ] || to="foo@$helo"
domain=${to##*@}

args=(smtp "$target" -c "$sessions" -m "$count" -s $((len + SMTP_SOURCE_HEADER_BYTES))
      --rcpts "$rcpts" --domains "$domain" --from "$from" --helo "$helo" --json --no-progress)
[ "$persist" = 1 ] || args+=(--per-connection 1)
[ "${BENCH_PIPELINING:-0}" = 1 ] || args+=(--no-pipelining)

out=$(mktemp -t bench-compat.XXXXXX)
"$BENCH" "${args[@]}" >"$out"
rc=$?
if [ -n "${BENCH_REPORT_DIR:-}" ]; then
  cp "$out" "$BENCH_REPORT_DIR/run-$(date +%s%N).json"
fi
if [ $rc -ne 0 ]; then
  echo "smtp-source-compat: error: tempmx-bench exit $rc" >&2
elif ! grep -q '"failed": 0,' "$out" || ! grep -q '"rejected": 0,' "$out"; then
  echo "smtp-source-compat: error: some messages failed or were rejected" >&2
  grep -E '"(attempted|ok|rejected|failed)":' "$out" >&2
  rc=1
fi
rm -f "$out"
exit $rc
