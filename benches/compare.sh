#!/usr/bin/env bash
# Side-by-side: coop vs restic (Debian package) on the make-corpus corpus, same machine, one run.
# usage: benches/compare.sh [--scale S] [--corpus DIR] [--work DIR]
# Prints wall seconds, CPU seconds and peak RSS per step, and the ratio restic/coop.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1.0; corpus=""; work=/tmp/coop-compare
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic; }
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time
cargo build --release --quiet
COOP="$PWD/target/release/coop"
MC=../shared/tools/make-corpus
rm -rf "$work"; mkdir -p "$work"
if [ -z "$corpus" ]; then corpus="$work/corpus"; "$MC" gen "$corpus" --scale "$scale" >/dev/null; fi
export XDG_CONFIG_HOME="$work/cfg" XDG_CACHE_HOME="$work/cache" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
"$COOP" init --repo "$work/coop" >/dev/null
restic init --repo "$work/restic" -q
results="$work/results.tsv"; : > "$results"

measure() { # name tool cmd...
  local name=$1 tool=$2; shift 2
  cat "$corpus"/db/dump.sql > /dev/null 2>&1 || true      # same page-cache state for both
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" > "$work/out" 2>&1 || { echo "$tool $name failed:"; cat "$work/out"; exit 1; }
  read -r wall user sys rss < "$work/t"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$tool" "$wall" "$user" "$sys" "$rss" >> "$results"
}
step() { # name coop-cmd -- restic-cmd
  local name=$1; shift
  local coopcmd=() resticcmd=()
  while [ "$1" != "--" ]; do coopcmd+=("$1"); shift; done; shift
  resticcmd=("$@")
  measure "$name" coop "${coopcmd[@]}"
  measure "$name" restic "${resticcmd[@]}"
}
step "initial backup" "$COOP" backup -q --repo "$work/coop" "$corpus" -- restic -q --repo "$work/restic" backup "$corpus"
step "no-change backup" "$COOP" backup -q --repo "$work/coop" "$corpus" -- restic -q --repo "$work/restic" backup "$corpus"
"$MC" mutate "$corpus" --scale "$scale" >/dev/null
step "incremental backup" "$COOP" backup -q --repo "$work/coop" "$corpus" -- restic -q --repo "$work/restic" backup "$corpus"
rm -rf "$work/r1" "$work/r2"
step "full restore" "$COOP" restore -q --repo "$work/coop" latest --target "$work/r1" -- restic -q --repo "$work/restic" restore latest --target "$work/r2"
rm -rf "$work/r1" "$work/r2"
size_coop=$(du -sb "$work/coop" | cut -f1); size_restic=$(du -sb "$work/restic" | cut -f1)

echo "corpus: $(du -sh --apparent-size "$corpus" | cut -f1) (scale $scale), machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
printf '%-20s %-7s %8s %8s %8s %10s %8s\n' step tool wall_s user_s sys_s rss_MiB ratio
awk -F'\t' '{ key=$1; if ($2=="coop") c[key]=$3; else r[key]=$3; line[NR]=$0 }
  END { for (i=1;i<=NR;i++) { split(line[i],f,"\t"); ratio = (f[2]=="restic" && c[f[1]]>0) ? sprintf("%.2fx", f[3]/c[f[1]]) : "";
        printf "%-20s %-7s %8.2f %8.2f %8.2f %10.0f %8s\n", f[1], f[2], f[3], f[4], f[5], f[6]/1024, ratio } }' "$results"
echo "repository size: coop $((size_coop/1048576)) MiB, restic $((size_restic/1048576)) MiB"
