#!/usr/bin/env bash
# Disaster recovery over a line: restore a whole service from an S3 store on loopback behind
# benches/shaper.py, a proxy that adds a round-trip time and a bandwidth limit, and replicate
# the whole repository from there to a local one ("copy" rows); coop beside restic and rustic
# (when installed, as in compare.sh), same corpus, same proxy.
# usage: benches/network.sh [--scale S] [--lines "RTT_MS:MBIT …"] [--server garage|moto] [--work DIR] [--tools "coop restic rustic"]
# Default lines: 30 ms / 100 Mbit/s (a home line) and 5 ms / 1000 Mbit/s (a rented server).
# The S3 server is a one-node Garage (built once into ~/.cache/coop-test, as for the suite) or
# moto (Python: at 1 Gbit/s it takes most of a core itself).
# Prints per line and tool: wall seconds, MB/s of stored pack data (what a full restore reads)
# and the share of the link's bandwidth used.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=0.25; lines="30:100 5:1000"; work=/tmp/coop-network; tools=""; server=garage
RUSTIC=$(command -v rustic || true)
[ -n "$RUSTIC" ] || { c="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/rustic/bin/rustic"; [ -x "$c" ] && RUSTIC=$c; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$tools" ] || tools="coop restic${RUSTIC:+ rustic}"
case " $tools " in *" rustic "*) [ -n "$RUSTIC" ] || { echo "rustic is not installed (see benches/compare.sh)" >&2; exit 2; } ;; esac
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
cargo build --release --quiet -p coop-cli
COOP="$PWD/target/release/coop"
COOP_TEST_SERVICES=0 source scripts/services.sh
COOP_TEST_GARAGE=0 source scripts/garage.sh
moto_venv
shaper_pid=""
trap '[ -n "$shaper_pid" ] && kill "$shaper_pid" 2>/dev/null; stop_services; stop_garage' EXIT
rm -rf "$work"; mkdir -p "$work"
buckets="bench-coop bench-restic bench-rustic"
case $server in
  moto)
    start_moto >/dev/null; server_pid=$MOTO_PID
    direct="$COOP_TEST_S3_ENDPOINT"; key=test; secret=test; region=us-east-1
    for b in $buckets; do
      python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='PUT')).read()" "$direct/$b"
    done ;;
  garage)
    start_garage 1 >/dev/null; server_pid=$(cat "$COOP_TEST_GARAGE_DIR/n1.pid")
    direct="$COOP_TEST_GARAGE_ENDPOINT"; key=$COOP_TEST_GARAGE_KEY_ID; secret=$COOP_TEST_GARAGE_SECRET; region=garage
    for b in $buckets; do
      "$COOP_TEST_GARAGE_BIN" -c "$COOP_TEST_GARAGE_DIR/n1.toml" bucket create "$b" >/dev/null
      "$COOP_TEST_GARAGE_BIN" -c "$COOP_TEST_GARAGE_DIR/n1.toml" bucket allow --read --write --owner "$b" --key coop-test >/dev/null
    done ;;
  *) echo "unknown server $server (garage or moto)" >&2; exit 2 ;;
esac
direct_hostport="${direct#http://}"
corpus="$work/corpus"; ../shared/tools/make-corpus gen "$corpus" --scale "$scale" >/dev/null
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=$region AWS_DEFAULT_REGION=$region AWS_ALLOW_HTTP=true
export XDG_CONFIG_HOME="$work/cfg" XDG_CACHE_HOME="$work/cache" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
export RUSTIC_PASSWORD=bench RUSTIC_CACHE_DIR="$work/rustic-cache" RUSTIC_NO_PROGRESS=true
# rustic reaches S3 through opendal, configured per endpoint (RUSTIC_REPO_OPT_*); opendal takes
# the credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY above (RUSTIC_REPO_OPT_
# ACCESS_KEY_ID becomes "access-key-id", which opendal does not know).
rustic_cmd() { # ENDPOINT, then the rustic command line: sets cmd
  local ep=$1; shift
  cmd=(env RUSTIC_REPOSITORY=opendal:s3 RUSTIC_REPO_OPT_BUCKET=bench-rustic RUSTIC_REPO_OPT_ROOT=/r
    RUSTIC_REPO_OPT_ENDPOINT="$ep" RUSTIC_REPO_OPT_REGION="$region" "$RUSTIC" "$@")
}
rustic_at() { rustic_cmd "$@"; "${cmd[@]}"; }
# The backups go straight to the store; only the restores and replications cross the line.
AWS_ENDPOINT_URL="$direct" "$COOP" init -q --repo s3://bench-coop/r >/dev/null 2>&1
AWS_ENDPOINT_URL="$direct" "$COOP" backup -q --repo s3://bench-coop/r "$corpus" >/dev/null
restic -q -r "s3:$direct/bench-restic" init >/dev/null
restic -q -r "s3:$direct/bench-restic" backup "$corpus" >/dev/null
case " $tools " in *" rustic "*)
  rustic_at "$direct" init >/dev/null 2>&1
  rustic_at "$direct" backup "$corpus" >/dev/null 2>&1 ;;
esac
# What a full restore reads: each tool's stored pack data.
stored_of() { # bucket prefix (boto3 from moto's virtualenv: signed, for either server)
  "$MOTO_VENV/bin/python" - "$direct" "$1" "$2" <<'PY'
import sys, boto3
url, bucket, prefix = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=url)
print(sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
          for o in page.get("Contents", [])))
PY
}
stored_coop=$(stored_of bench-coop r/packs/)
stored_restic=$(stored_of bench-restic data/)
stored_rustic=$(stored_of bench-rustic r/data/)
echo "corpus: $(du -sh --apparent-size "$corpus" | cut -f1) (scale $scale), coop packs $((stored_coop / 1000000)) MB; server: $server; $(restic version | cut -d' ' -f1-2)${RUSTIC:+, $("$RUSTIC" --version)}; $(nproc) cores"
# CPU seconds used so far by the given processes (all their threads).
cpu_of() { python3 -c '
import os, sys
hz = os.sysconf("SC_CLK_TCK"); t = 0
for p in sys.argv[1:]:
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    except OSError:
        pass
print(t / hz)' "$@"; }
# One timed run and its row: line, tool, wall seconds, MB/s of stored data, share of the link,
# the tool's CPU seconds, and how busy the cores were (tool, S3 server and shaper together):
# near 100 % the line is not what bounds the run.
timed() { # LABEL BYTES command…
  local label=$1 bytes=$2; shift 2
  local c0 t0 t1 c1
  c0=$(cpu_of "$server_pid" "$shaper_pid"); t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$work/tcpu" "$@" >/dev/null 2>"$work/err" || { echo "$label failed over $line:"; cat "$work/err"; return 0; }
  t1=$(date +%s.%N); c1=$(cpu_of "$server_pid" "$shaper_pid")
  python3 - "$line" "$label" "$t0" "$t1" "$bytes" "$mbit" "$c0" "$c1" "$(tail -1 "$work/tcpu")" "$(nproc)" <<'PY'
import sys
line, tool, t0, t1, stored, mbit, c0, c1, tcpu, cores = sys.argv[1:]
wall = float(t1) - float(t0)
rate = int(stored) / wall / 1e6
own = sum(float(x) for x in tcpu.split())
busy = (own + float(c1) - float(c0)) / wall / int(cores)
print(f"{line + ' ms:Mbit':<14} {tool:<12} {wall:8.2f} {rate:8.2f} {100 * rate * 8 / float(mbit):7.0f}% {own:8.2f} {100 * busy:6.0f}%")
PY
}
# After the backups the server works on for a while (Garage: block resync, metadata); the first
# tool timed would pay for it. Wait until it uses under 2 % of a core over a second (at most 60 s).
for _ in $(seq 60); do
  c0=$(cpu_of "$server_pid"); sleep 1; c1=$(cpu_of "$server_pid")
  python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 0.02 else 1)" "$c0" "$c1" && break
done
printf "%-14s %-12s %8s %8s %8s %8s %7s\n" line tool wall MB/s link% cpu_s busy%
for line in $lines; do
  rtt=${line%%:*}; mbit=${line##*:}
  port=$(free_port)
  python3 benches/shaper.py "$port" "${direct_hostport%%:*}" "${direct_hostport##*:}" "$rtt" "$mbit" &
  shaper_pid=$!
  sleep 0.5
  proxy="http://127.0.0.1:$port"
  for tool in $tools; do
    out="$work/r-$tool-$rtt"; rm -rf "$out"; sync
    case $tool in
      coop) cmd=(env AWS_ENDPOINT_URL="$proxy" "$COOP" restore -q --repo s3://bench-coop/r latest --target "$out") ;;
      restic) cmd=(restic -q -r "s3:$proxy/bench-restic" restore latest --target "$out") ;;
      rustic) rustic_cmd "$proxy" restore latest "$out" ;;
    esac
    case $tool in coop) bytes=$stored_coop ;; rustic) bytes=$stored_rustic ;; *) bytes=$stored_restic ;; esac
    timed "$tool" "$bytes" "${cmd[@]}"
  done
  # Replication across the line: the whole repository from the store behind the proxy to a
  # local one (coop replicate; restic and rustic copy into a repository with the same chunker).
  for tool in $tools; do
    dst="$work/c-$tool-$rtt"; rm -rf "$dst"; sync
    case $tool in
      coop) cmd=(env AWS_ENDPOINT_URL="$proxy" "$COOP" replicate -q --from s3://bench-coop/r --to "$dst") ;;
      restic)
        RESTIC_FROM_PASSWORD=bench restic -q -r "$dst" init --from-repo "s3:$proxy/bench-restic" --copy-chunker-params >/dev/null
        cmd=(env RESTIC_FROM_PASSWORD=bench restic -q -r "$dst" copy --from-repo "s3:$proxy/bench-restic") ;;
      rustic)
        # rustic copies into targets named by profiles: one for this line's local repository.
        mkdir -p "$XDG_CONFIG_HOME/rustic"
        printf '[repository]\nrepository = "%s"\npassword = "bench"\n' "$dst" > "$XDG_CONFIG_HOME/rustic/dst-$rtt.toml"
        # Created with the source's chunker (as restic's init --copy-chunker-params), untimed:
        # a copy that selects no snapshot.
        rustic_at "$proxy" copy --init --target "dst-$rtt" --filter-host no-such-host >/dev/null 2>&1
        rustic_cmd "$proxy" copy --target "dst-$rtt" ;;
    esac
    case $tool in coop) bytes=$stored_coop ;; rustic) bytes=$stored_rustic ;; *) bytes=$stored_restic ;; esac
    timed "$tool copy" "$bytes" "${cmd[@]}"
  done
  kill "$shaper_pid" 2>/dev/null || true; wait "$shaper_pid" 2>/dev/null || true; shaper_pid=""
done
