#!/usr/bin/env bash
# rustic (restic's format, in Rust) for benches/compare.sh and benches/network.sh: built from
# crates.io into ${COOP_TEST_CACHE:-~/.cache/coop-test}/rustic once (about 25 minutes on two
# cores; about 70 under nice with one job). Both scripts use it when it is there.
# usage: benches/get-rustic.sh [VERSION]   (default 0.11.4, the version the figures in
# docs/PERFORMANCE.md were measured with)
set -euo pipefail
version=${1:-0.11.4}
dest="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/rustic"
if [ -x "$dest/bin/rustic" ] && "$dest/bin/rustic" --version | grep -qx "rustic v\{0,1\}$version"; then
  "$dest/bin/rustic" --version; exit 0
fi
cargo install rustic-rs --version "$version" --locked --root "$dest"
"$dest/bin/rustic" --version
