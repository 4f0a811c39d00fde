#!/usr/bin/env bash
# Builds coop and runs a real backup and restore into a local directory repository.
# Uses a throwaway identity, repository and cache under a temp dir (kept for you to look at).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
COOP="$PWD/target/release/coop"
demo=$(mktemp -d /tmp/coop-demo.XXXXXX)
export XDG_CONFIG_HOME="$demo/config" XDG_CACHE_HOME="$demo/cache" COOP_REPO="$demo/repo"
set -x
"$COOP" init
"$COOP" backup --tag demo .
"$COOP" backup --tag demo .            # unchanged: stat-only, uploads nothing
"$COOP" snapshots
"$COOP" restore latest --target "$demo/restored"
set +x
diff -r --exclude target . "$demo/restored$PWD" && echo "demo: restored tree is identical to the source"
echo "demo: everything is in $demo (identity in $XDG_CONFIG_HOME/coop/identity.txt)"
