#!/usr/bin/env bash
# Peak RSS of `check`, `check --read-data`, `restore` and `prune` as the blob count grows.
# A generated tree of small files (one blob each; default 1 000 000, in directories of 1 000,
# the generator of many-files.sh) is backed up at 3/10 and at all of it, each size into its
# own repository: a first snapshot of everything, a second of the first half, then the first
# is forgotten, so that prune has half of the blobs to drop. Each binary (this tree's release
# build, and with --before another coop binary, e.g. main's) gets its own copy of the
# repository and a fresh cache. Prints a table of peak RSS (MiB) per command and size, and
# the growth per blob between the two sizes. Figures are for reports, not tests.
# Restores go to --restore-to (default WORK/restored; a tmpfs such as /dev/shm/coop-restored
# spares the disk the 1 M small files, about 4 GiB of blocks, and does not change coop's RSS).
#
# --blobs N measures by blob count instead, where N small files would not fit on the disk: the
# repositories are made with `coop init --chunker-params 64,256,1KiB` (chunks of about 310
# bytes), and the tree is N/100 files of 31 KiB of random bytes (about 100 blobs each, 100 files
# per directory; 10 M blobs are 3.1 GB) in 20 groups; the two sizes are 1/10 and all of N, each
# backed up as above (a second snapshot of the first half of its groups).
# usage: benches/memory.sh [--files N | --blobs N] [--work DIR] [--before BIN] [--coop BIN] [--restore-to DIR] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
files=1000000; work=/tmp/coop-memory; keep=0; before=""; COOP=""; restored=""; blobs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files=$2; shift 2 ;;
    --blobs) blobs=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --coop) COOP=$2; shift 2 ;;
    --restore-to) restored=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ -z "$COOP" ]; then
  cargo build --release --quiet -p coop-cli
  COOP="$PWD/target/release/coop"
fi
tree="$work/tree"
restored=${restored:-$work/restored}
init_args=(); groups=10; parts=(3 10)
if [ -n "$blobs" ]; then
  files=$((blobs / 100)); groups=20; parts=(2 20); init_args=(--chunker-params 64,256,1KiB)
  marker="$tree/.done-blobs100-$blobs"
else
  marker="$tree/.done-$files"
fi
if [ ! -f "$marker" ]; then
  rm -rf "$work"; mkdir -p "$tree"
  echo "generating $files files in $tree ..." >&2
  python3 - "$tree" "$files" "$groups" "${blobs:+random}" <<'EOF'
import os, sys
root, n, groups, random = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "random"
per_group = n // groups
per_dir = 100 if random else 1000
for i in range(n):
    g, k = divmod(i, per_group)
    d = os.path.join(root, f"g{g}", f"d{k // per_dir:05d}")
    if k % per_dir == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{k % per_dir:03d}.txt"), "wb") as f:
        if random:
            f.write(os.urandom(31 << 10))
        else:
            f.write(((f"file {i} of the many-files benchmark\n") * (1 + i % 10)).encode())
EOF
  touch "$marker"
fi
export XDG_CONFIG_HOME="$work/cfg"
q() { "$@" > "$work/out" 2>&1 || { echo "failed: $*" >&2; cat "$work/out" >&2; exit 1; }; }
rss() { # binary command args... -> peak RSS in KiB (wall seconds kept in $work/times)
  local bin=$1; shift
  /usr/bin/time -f "%M %e" -o "$work/t" "$bin" "$@" > "$work/out" 2>&1 \
    || { echo "$bin $* failed:" >&2; cat "$work/out" >&2; exit 1; }
  read -r kib secs < "$work/t"
  echo "$n, $(basename "$bin") ${*:1:3}: $secs s" >> "$work/times"
  echo "$kib"
}
bins=("after:$COOP"); [ -n "$before" ] && bins=("before:$before" "${bins[@]}")
declare -A M
rm -f "$work/times"
sizes=()
for part in "${parts[@]}"; do
  n=$((files / groups * part)); [ -n "$blobs" ] && n=$((n * 100)); sizes+=("$n")
  paths=(); for g in $(seq 0 $((part - 1))); do paths+=("$tree/g$g"); done
  half=("${paths[@]:0:$(((part + 1) / 2))}")
  repo="$work/repo-$n"; rm -rf "$repo" "$work/cache-build"
  export XDG_CACHE_HOME="$work/cache-build"
  q "$COOP" init -q --repo "$repo" "${init_args[@]}"
  q "$COOP" backup -q --repo "$repo" "${paths[@]}"
  q "$COOP" backup -q --repo "$repo" "${half[@]}"
  q "$COOP" forget -q --repo "$repo" --keep-last 1
  for b in "${bins[@]}"; do
    label=${b%%:*}; bin=${b#*:}
    r="$work/repo-$n-$label"; rm -rf "$r" "$work/cache-$label" "$restored"
    cp -a "$repo" "$r"
    export XDG_CACHE_HOME="$work/cache-$label"
    M[$n,$label,check]=$(rss "$bin" check -q --repo "$r")
    M[$n,$label,read]=$(rss "$bin" check -q --read-data --repo "$r")
    M[$n,$label,restore]=$(rss "$bin" restore -q --repo "$r" latest --target "$restored")
    rm -rf "$restored"
    M[$n,$label,prune]=$(rss "$bin" prune -q --repo "$r")
    [ "$keep" = 1 ] || rm -rf "$r" "$work/cache-$label"
  done
  [ "$keep" = 1 ] || rm -rf "$repo"
done
rm -rf "$work/cache-build"
unit=files; [ -n "$blobs" ] && unit=blobs
printf '| command | binary |'; for n in "${sizes[@]}"; do printf ' %s %s MiB |' "$n" "$unit"; done
printf ' bytes per blob |\n|---|---|'; for _ in "${sizes[@]}"; do printf -- '---|'; done; printf -- '---|\n'
for c in check read restore prune; do
  for b in "${bins[@]}"; do
    label=${b%%:*}
    case $c in read) name="check --read-data" ;; *) name=$c ;; esac
    printf '| %s | %s |' "$name" "$label"
    for n in "${sizes[@]}"; do printf ' %s |' "$(awk -v k="${M[$n,$label,$c]}" 'BEGIN { printf "%.1f", k / 1024 }')"; done
    lo=${sizes[0]}; hi=${sizes[1]}
    awk -v a="${M[$lo,$label,$c]}" -v b="${M[$hi,$label,$c]}" -v x="$lo" -v y="$hi" \
      'BEGIN { printf " %.0f |\n", (b - a) * 1024 / (y - x) }'
  done
done
echo
echo "wall seconds (for reading the table, not for comparing tools):"
cat "$work/times"
