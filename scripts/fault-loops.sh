#!/usr/bin/env bash
# Long fault-injection loops: the integrity scenarios with N times the trials CI runs
# (kill -9 during backup, flipped bytes, disk full). usage: scripts/fault-loops.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export COOP_TRIALS_SCALE="${1:-10}"
rm -f target/tmp/integrity-report.txt
cargo test --release -p coop-cli --test suite -- integrity:: --test-threads=1
cat target/tmp/integrity-report.txt
