#!/usr/bin/env bash
# The full test suite: formatting, lints, unit, property and end-to-end tests.
# This is the command README.md gives and .ci/run calls. It installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found; install the Rust toolchain (https://rustup.rs)" >&2
  exit 1
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Servers for the S3, replication, agent and database tests.
source scripts/services.sh
# A real three-node Garage cluster (built from crates.io once, cached) for tests/garage.rs.
source scripts/garage.sh
trap 'stop_services; stop_garage' EXIT

echo "== cargo test --workspace"
rm -f target/tmp/integrity-report.txt
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee target/coop-test.log || status=$?
if [ -f target/tmp/integrity-report.txt ]; then
  echo "== integrity scenarios (trials, faults detected, snapshots lost)"
  cat target/tmp/integrity-report.txt
fi
# Print one closing line with the totals of every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "cargo test: %d passed, %d failed, %d skipped\n", p, f, i }' target/coop-test.log

# The service recipes, against the real services (Debian packages, Synapse in a cached venv).
# They run services as their own system users, so they need root; elsewhere they are skipped
# with a note (COOP_TEST_SERVICES=0 skips them too).
if [ "${COOP_TEST_SERVICES:-1}" = 0 ]; then
  echo "== service recipe tests skipped (COOP_TEST_SERVICES=0)"
elif [ "$(id -u)" != 0 ]; then
  echo "== service recipe tests skipped: they need root (run tests/services/run.sh as root)"
else
  echo "== service recipe tests (tests/services/run.sh)"
  cargo build --quiet -p coop-cli
  COOP_BIN=target/debug/coop tests/services/run.sh || status=1
fi

# The Debian package: built (with the packaging profile, as released, reusing target/), checked
# by lintian, installed, used and removed on this machine (tests/packaging.sh). It needs root;
# elsewhere it is skipped with a note (COOP_TEST_PACKAGING=0 skips it too).
if [ "${COOP_TEST_PACKAGING:-1}" = 0 ]; then
  echo "== packaging test skipped (COOP_TEST_PACKAGING=0)"
else
  echo "== packaging test (tests/packaging.sh)"
  tests/packaging.sh || status=1
fi

# The transparency report's page in a real browser (Chromium from Debian's packages, installed
# as root; skipped with a note elsewhere): no request leaves the page, every member and site is
# shown, and target/report-screenshot.png is kept. COOP_TEST_BROWSER=0 skips it.
if [ "${COOP_TEST_BROWSER:-1}" = 0 ]; then
  echo "== browser test skipped (COOP_TEST_BROWSER=0)"
else
  echo "== report page in a browser (tests/report_browser.sh)"
  tests/report_browser.sh || status=1
fi
exit "$status"
