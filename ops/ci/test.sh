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
# ... and scans it with axe-core, an npm package (control/tests/web/package.json).
command -v npm >/dev/null || need_apt+=(npm)
# promtool checks the live /metrics output and the alert rules.
command -v promtool >/dev/null || need_apt+=(prometheus)
# The compatible APIs' tests drive published client libraries (npm) against the binary.
command -v node >/dev/null || need_apt+=(nodejs)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# axe-core at the version of the committed package-lock.json, for the accessibility scan.
npm ci --prefix control/tests/web --no-audit --no-fund --loglevel=error
# Pinned by each package-lock.json; node_modules stays beside it (gitignored).
npm ci --no-audit --no-fund --prefix control/tests/compat/mailtm >/dev/null

cargo test --workspace --locked --no-fail-fast "$@"
