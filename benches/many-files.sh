#!/usr/bin/env bash
# How a no-change backup scales with the file count: a generated tree of small files (default
# 1 000 000, in directories of 1 000), backed up at 1/10, 3/10 and all of it, each into its own
# repository. For each size it prints the initial backup, the first no-change backup (which also
# builds the on-disk index table) and a second one: wall, user, sys, peak RSS, and cost per file.
# Wall times are for reports, not tests.
# usage: benches/many-files.sh [--files N] [--work DIR] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
files=1000000; work=/tmp/coop-many-files; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet -p coop-cli
COOP="$PWD/target/release/coop"
tree="$work/tree"
if [ ! -f "$tree/.done-$files" ]; then
  rm -rf "$work"; mkdir -p "$tree"
  echo "generating $files files in $tree ..."
  # Ten groups of files/10 files, 1 000 per directory, 40-400 bytes each, all different.
  python3 - "$tree" "$files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per_group = n // 10
for i in range(n):
    g, k = divmod(i, per_group)
    d = os.path.join(root, f"g{g}", f"d{k // 1000:04d}")
    if k % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{k % 1000:03d}.txt"), "w") as f:
        f.write((f"file {i} of the many-files benchmark\n") * (1 + i % 10))
EOF
  touch "$tree/.done-$files"
fi
export XDG_CONFIG_HOME="$work/cfg" XDG_CACHE_HOME="$work/cache"
run() { # label repo paths...
  local label=$1 repo=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$COOP" backup -q --repo "$repo" "$@" > "$work/out" 2>&1 \
    || { echo "backup failed:"; cat "$work/out"; exit 1; }
  read -r wall user sys rss < "$work/t"
  echo "$wall $user $sys $rss"
}
printf '| files | initial wall s | initial RSS MiB | first no-change wall s | no-change wall s | user s | sys s | RSS MiB | µs per file |\n|---|---|---|---|---|---|---|---|---|\n'
for tenths in 1 3 10; do
  n=$((files / 10 * tenths))
  paths=(); for g in $(seq 0 $((tenths - 1))); do paths+=("$tree/g$g"); done
  repo="$work/repo-$tenths"; rm -rf "$repo" "$work/cache"
  "$COOP" init -q --repo "$repo" > /dev/null 2>&1
  find "${paths[@]}" -type f -exec cat {} + > /dev/null   # contents and dentries cached for every run
  read -r iw _ _ irss <<< "$(run initial "$repo" "${paths[@]}")"
  # The first no-change run after a large initial backup also builds the on-disk index table.
  read -r fw _ _ _ <<< "$(run no-change "$repo" "${paths[@]}")"
  read -r w u s rss <<< "$(run no-change "$repo" "${paths[@]}")"
  per=$(awk -v w="$w" -v n="$n" 'BEGIN { printf "%.1f", w * 1e6 / n }')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$iw" "$((irss / 1024))" "$fw" "$w" "$u" "$s" "$((rss / 1024))" "$per"
done
[ "$keep" = 1 ] || rm -rf "$work/repo-"* "$work/cache"
