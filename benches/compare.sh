#!/usr/bin/env bash
# Side-by-side: coop vs restic and borg (Debian packages, installed if missing), rustic (when
# installed: on PATH or in ~/.cache/coop-test/rustic: benches/get-rustic.sh) and a newer
# restic as "restic-new" (when in ~/.cache/coop-test/restic: benches/get-restic.sh), one run,
# same machine, interleaved per step, encryption on, each at its default compression.
# usage: benches/compare.sh [--scale S] [--corpus DIR] [--work DIR] [--tools "coop restic borg rustic restic-new"]
# Steps: initial backup, no-change re-backup, make-corpus mutate + incremental backup, full
# restore, check --read-data. Prints wall / user / sys seconds, peak RSS and repository size per
# step, and each peer's ratio to coop (peer wall / coop wall: above 1 means coop is faster).
# Before the steps, `coop-primitives` (benches/primitives.rs) measures the CPU time of the
# initial backup's primitives over the same corpus on one thread (read+chunk, keyed hash, zstd
# with the probe, age encryption and pack naming; nothing written); the initial backup's line
# at the end sets it, divided by the cores, against the measured wall time (issue 29 item 1:
# within 15 %). It then reads its packs back the same way (read, decrypt and name, decompress
# and verify every blob: check --read-data's work) and writes the tree from them (restore's),
# and two more lines set those against the measured restore and check (item 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1.0; corpus=""; work=/tmp/coop-compare; tools=""
RUSTIC=$(command -v rustic || true)
[ -n "$RUSTIC" ] || { c="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/rustic/bin/rustic"; [ -x "$c" ] && RUSTIC=$c; }
RESTIC_NEW="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/restic/usr/bin/restic"
[ -x "$RESTIC_NEW" ] || RESTIC_NEW=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$tools" ] || tools="coop restic borg${RUSTIC:+ rustic}${RESTIC_NEW:+ restic-new}"
# The work directory is emptied below: a corpus inside it would be deleted.
if [ -n "$corpus" ]; then
  case "$(realpath -m "$corpus")/" in "$(realpath -m "$work")"/*)
    echo "--corpus $corpus is inside --work $work, which this script empties: put it elsewhere" >&2; exit 2 ;;
  esac
fi
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need restic restic; need borg borgbackup; [ -x /usr/bin/time ] || need time time
cargo build --release --quiet -p coop-cli -p coop-benches --bins
COOP="${CARGO_TARGET_DIR:-$PWD/target}/release/coop"
PRIMITIVES="${CARGO_TARGET_DIR:-$PWD/target}/release/coop-primitives"
MC=../shared/tools/make-corpus
# ext4 skips inodes freed in the last 60-300 s when it allocates new ones, and that scan made a
# restore after a mass delete (such as the previous run's work directory) two to three times
# slower in system time. Remember when we deleted, and let that window pass before restoring.
deleted_at=0
if [ -e "$work" ]; then rm -rf "$work"; deleted_at=$(date +%s); fi
mkdir -p "$work"
if [ -z "$corpus" ]; then corpus="$work/corpus"; "$MC" gen "$corpus" --scale "$scale" >/dev/null; fi
export XDG_CONFIG_HOME="$work/cfg" XDG_CACHE_HOME="$work/cache" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
export BORG_PASSPHRASE=bench BORG_BASE_DIR="$work/borg-base" BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
"$COOP" init -q --repo "$work/coop" >/dev/null 2>&1
restic init --repo "$work/restic" -q
borg init --encryption=repokey-blake2 "$work/borg"
export RUSTIC_PASSWORD=bench RUSTIC_CACHE_DIR="$work/rustic-cache"
case " $tools " in *" rustic "*) "$RUSTIC" -r "$work/rustic" --no-progress init >/dev/null 2>&1 ;; esac
case " $tools " in *" restic-new "*) "$RESTIC_NEW" init --repo "$work/restic-new" -q ;; esac
results="$work/results.tsv"; : > "$results"

# Same state before every timed run: every input in the page cache (borg drops it), and no dirty
# data left by the previous tool or by mutate (otherwise the next tool's first fsync waits for it).
warm() { find "$corpus" -type f -exec cat {} + > /dev/null 2>&1 || true; sync; }
cmd_for() { # step tool
  case "$2:$1" in
    coop:backup) echo "$COOP backup -q --repo $work/coop $corpus" ;;
    restic:backup) echo "restic -q --repo $work/restic backup $corpus" ;;
    restic-new:backup) echo "$RESTIC_NEW -q --repo $work/restic-new backup $corpus" ;;
    restic-new:restore) echo "$RESTIC_NEW -q --repo $work/restic-new restore latest --target $work/r-restic-new" ;;
    restic-new:check) echo "$RESTIC_NEW -q --repo $work/restic-new check --read-data" ;;
    borg:backup) echo "borg create $work/borg::s$(date +%s%N) $corpus" ;;
    rustic:backup) echo "$RUSTIC -r $work/rustic --no-progress backup $corpus" ;;
    rustic:restore) echo "$RUSTIC -r $work/rustic --no-progress restore latest $work/r-rustic" ;;
    rustic:check) echo "$RUSTIC -r $work/rustic --no-progress check --read-data" ;;
    coop:restore) echo "$COOP restore -q --repo $work/coop latest --target $work/r-coop" ;;
    restic:restore) echo "restic -q --repo $work/restic restore latest --target $work/r-restic" ;;
    borg:restore) echo "sh -c 'mkdir -p $work/r-borg && cd $work/r-borg && borg extract $work/borg::\$(borg list --last 1 --short $work/borg)'" ;;
    coop:check) echo "$COOP check -q --read-data --repo $work/coop" ;;
    restic:check) echo "restic -q --repo $work/restic check --read-data" ;;
    borg:check) echo "borg check --verify-data $work/borg" ;;
  esac
}
step() { # name kind
  for t in $tools; do
    warm
    if [ "$2" = restore ]; then
      rm -rf "$work/r-$t"; dd if=/dev/zero of="$work/ballast" bs=1M count=2048 status=none; rm -f "$work/ballast"
      # The same free memory for every tool: with the page cache full, writing 2 GB of new
      # files makes the kernel compact memory for large folios as it goes (here about a
      # quarter of a restore's system time, more for whoever comes later); compact it first.
      if [ -w /proc/sys/vm/compact_memory ]; then echo 1 > /proc/sys/vm/compact_memory; fi
    fi
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" sh -c "$(cmd_for "$2" "$t")" > "$work/out" 2>&1 \
      || { echo "$t $1 failed:"; cat "$work/out"; exit 1; }
    read -r wall user sys rss < "$work/t"
    size=$(du -sb "$work/$t" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$t" "$wall" "$user" "$sys" "$rss" "$size" >> "$results"
  done
}
# Before the first step that creates many files (the primitives write the tree).
wait_s=$((deleted_at + 300 - $(date +%s)))
if [ "$deleted_at" -gt 0 ] && [ "$wait_s" -gt 0 ]; then echo "waiting ${wait_s} s for ext4's recently-deleted-inode window" >&2; sleep "$wait_s"; fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
# The primitives' CPU time over the same corpus (contents cached, nothing written).
warm
"$PRIMITIVES" "$corpus" --read-side "$work/prim" > "$work/primitives.txt"
step "initial backup" backup
step "no-change backup" backup
"$MC" mutate "$corpus" --scale "$scale" >/dev/null
step "incremental backup" backup
step "full restore" restore
rm -rf "$work"/r-*
step "check --read-data" check
rm -rf "$work/prim"

echo "corpus: $(du -sh --apparent-size "$corpus" | cut -f1) (scale $scale); machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(restic version | cut -d' ' -f1-2), $(borg --version)${RUSTIC:+, $("$RUSTIC" --version)}${RESTIC_NEW:+, restic-new: $("$RESTIC_NEW" version | cut -d' ' -f1-2)}; load average at the start: $load, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-20s %-10s %8s %8s %8s %9s %10s %8s\n' step tool wall_s user_s sys_s rss_MiB repo_MiB vs_coop
awk -F'\t' '{ if ($2=="coop") c[$1]=$3; line[NR]=$0 }
  END { for (i=1;i<=NR;i++) { split(line[i],f,"\t"); ratio = (f[2]!="coop" && c[f[1]]>0) ? sprintf("%.2fx", f[3]/c[f[1]]) : "";
        printf "%-20s %-10s %8.2f %8.2f %8.2f %9.0f %10.0f %8s\n", f[1], f[2], f[3], f[4], f[5], f[6]/1024, f[7]/1048576, ratio } }' "$results"
# Issue 29 item 1: the initial backup against its primitives' CPU time divided by the cores.
awk -F'\t' -v prim="$(tail -1 "$work/primitives.txt")" '$1=="initial backup" && $2=="coop" {
  n = split(prim, kv, /[ =]/); for (i = 1; i < n; i += 2) p[kv[i]] = kv[i+1]
  printf "initial backup bound: primitives %.2f CPU-s (read+chunk %.2f, of which kernel %.2f; hash %.2f; zstd %.2f; encrypt+name %.2f) / %d cores = %.2f s; coop %.2f s wall (%.2f CPU-s: %.2f / %d = %.2f s with its own work perfectly spread); wall / bound = %.2f (target <= 1.15); storing the packs (write, fsync, drop from the cache) adds %.2f CPU-s: bound %.2f s, wall / that = %.2f\n",
    p["primitives_cpu_s"], p["read_chunk_s"], p["kernel_s"], p["hash_s"], p["compress_s"], p["encrypt_s"], p["cores"], p["bound_s"],
    $3, $4 + $5, $4 + $5, p["cores"], ($4 + $5) / p["cores"], $3 / p["bound_s"], p["store_s"], p["stored_bound_s"], $3 / p["stored_bound_s"] }' "$results"
# Issue 29 item 2: restore and check --read-data against the CPU time of their primitives.
awk -F'\t' -v prim="$(tail -1 "$work/primitives.txt")" '$2=="coop" && ($1=="full restore" || $1=="check --read-data") {
  n = split(prim, kv, /[ =]/); for (i = 1; i < n; i += 2) p[kv[i]] = kv[i+1]
  r = ($1 == "full restore")
  printf "%s bound: primitives %.2f CPU-s (read packs %.2f; decrypt+name %.2f; decompress+verify %.2f%s) / %d cores = %.2f s; coop %.2f s wall (%.2f CPU-s); wall / bound = %.2f (target <= 1.15)\n",
    $1, r ? p["restore_cpu_s"] : p["check_cpu_s"], p["read_s"], p["decrypt_s"], p["decode_s"], r ? sprintf("; write the tree %.2f", p["write_s"]) : "",
    p["cores"], r ? p["restore_bound_s"] : p["check_bound_s"], $3, $4 + $5, $3 / (r ? p["restore_bound_s"] : p["check_bound_s"]) }' "$results"
