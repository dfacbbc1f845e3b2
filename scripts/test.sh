#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine:
# installs test dependencies, checks formatting and lints, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
