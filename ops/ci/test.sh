#!/usr/bin/env bash
# The project's test command (README): installs what the tests need on a fresh Debian
# machine, then runs every test of the workspace. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v swaks >/dev/null || need_apt+=(swaks)
command -v dig >/dev/null || need_apt+=(dnsutils)
# The web inbox's end-to-end test drives Debian's headless Chromium through chromedriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# promtool checks the live /metrics output and the alert rules.
command -v promtool >/dev/null || need_apt+=(prometheus)
# Fleet mode's tests start a real 6-node Redis Cluster (redis-server 7.0, redis-cli --cluster).
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo test --workspace --locked --no-fail-fast "$@"
