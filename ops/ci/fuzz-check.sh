#!/usr/bin/env bash
# Builds every fuzz target on the stable toolchain. The fuzz crates are workspaces of their
# own (cargo fuzz runs them on nightly, outside CI), so nothing else would notice when a
# change to the crates they fuzz stops them compiling. libfuzzer-sys compiles libFuzzer,
# which needs a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v c++ >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++ >/dev/null
fi

# One target dir for the three: their dependencies are mostly the same.
export CARGO_TARGET_DIR=target/fuzz-check
# As cargo fuzz builds them: test-only constructors the targets use need `fuzzing`.
export RUSTFLAGS="--cfg fuzzing"
for crate in store/fuzz ingress/fuzz dns/fuzz; do
    cargo check --manifest-path "$crate/Cargo.toml" --bins --locked
done
