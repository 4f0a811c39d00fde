#!/usr/bin/env bash
# Disaster recovery over a line: restore a whole service from an S3 store (moto, on loopback)
# behind benches/shaper.py, a proxy that adds a round-trip time and a bandwidth limit, and
# replicate the whole repository from there to a local one ("copy" rows); coop
# beside restic (and rustic when installed, as in compare.sh), same corpus, same proxy.
# usage: benches/network.sh [--scale S] [--lines "RTT_MS:MBIT …"] [--work DIR] [--tools "coop restic rustic"]
# Default lines: 30 ms / 100 Mbit/s (a home line) and 5 ms / 1000 Mbit/s (a rented server).
# Prints per line and tool: wall seconds, MB fetched (the proxy's byte count is not needed:
# the stored size is what a full restore reads) and the share of the link's bandwidth used.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=0.25; lines="30:100 5:1000"; work=/tmp/coop-network; tools=""
RUSTIC=$(command -v rustic || true)
[ -n "$RUSTIC" ] || { c="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/rustic/bin/rustic"; [ -x "$c" ] && RUSTIC=$c; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$tools" ] || tools="coop restic${RUSTIC:+ rustic}"
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
cargo build --release --quiet -p coop-cli
COOP="$PWD/target/release/coop"
source scripts/services.sh
shaper_pid=""
trap '[ -n "$shaper_pid" ] && kill "$shaper_pid" 2>/dev/null; stop_services' EXIT
start_moto >/dev/null
rm -rf "$work"; mkdir -p "$work"
corpus="$work/corpus"; ../shared/tools/make-corpus gen "$corpus" --scale "$scale" >/dev/null
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export XDG_CONFIG_HOME="$work/cfg" XDG_CACHE_HOME="$work/cache" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
export RUSTIC_PASSWORD=bench RUSTIC_CACHE_DIR="$work/rustic-cache"
direct="$COOP_TEST_S3_ENDPOINT"; direct_hostport="${direct#http://}"
python3 - "$direct" <<'PY'
import sys, urllib.request
for b in ("bench-coop", "bench-restic", "bench-rustic"):
    urllib.request.urlopen(urllib.request.Request(f"{sys.argv[1]}/{b}", method="PUT")).read()
PY
# The backups go straight to the store; only the restores cross the line.
AWS_ENDPOINT_URL="$direct" "$COOP" init -q --repo s3://bench-coop/r >/dev/null 2>&1
AWS_ENDPOINT_URL="$direct" "$COOP" backup -q --repo s3://bench-coop/r "$corpus" >/dev/null
restic -q -r "s3:$direct/bench-restic" init >/dev/null
restic -q -r "s3:$direct/bench-restic" backup "$corpus" >/dev/null
case " $tools " in *" rustic "*)
  cat > "$work/rustic.toml" <<TOML
[repository]
repository = "opendal:s3"
password = "bench"
[repository.options]
bucket = "bench-rustic"
root = "/r"
endpoint = "ENDPOINT"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
TOML
  ;;
esac
# What a full restore reads: each tool's stored pack data.
stored_of() { # bucket prefix
  python3 - "$direct" "$1" "$2" <<'PY'
import sys, urllib.parse, urllib.request, re
url, bucket, prefix = sys.argv[1:]
total, token = 0, None
while True:
    q = f"{url}/{bucket}?list-type=2&prefix={prefix}" + (f"&continuation-token={urllib.parse.quote(token)}" if token else "")
    x = urllib.request.urlopen(q).read().decode()
    total += sum(int(s) for s in re.findall(r"<Size>(\d+)</Size>", x))
    m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", x)
    if not m:
        break
    token = m.group(1)
print(total)
PY
}
stored_coop=$(stored_of bench-coop r/packs/)
stored_restic=$(stored_of bench-restic data/)
stored=$stored_coop
echo "corpus: $(du -sh --apparent-size "$corpus" | cut -f1) (scale $scale), coop packs $((stored / 1000000)) MB; $(restic version | cut -d' ' -f1-2)${RUSTIC:+, $("$RUSTIC" --version)}; $(nproc) cores"
# One row: line, tool, start and end times, bytes moved, link Mbit/s.
row() {
  python3 - "$@" <<'PY'
import sys
line, tool, t0, t1, stored, mbit = sys.argv[1:]
wall = float(t1) - float(t0)
rate = int(stored) / wall / 1e6
print(f"{line + ' ms:Mbit':<12} {tool:<12} {wall:8.2f} {rate:8.2f} {100 * rate * 8 / float(mbit):7.0f}%")
PY
}
printf "%-12s %-12s %8s %8s %8s\n" line tool wall MB/s link%
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
      rustic) continue ;;  # rustic over S3 needs its opendal config per endpoint; see the note in PERFORMANCE.md
    esac
    t0=$(date +%s.%N)
    "${cmd[@]}" >/dev/null 2>"$work/err-$tool" || { echo "$tool failed over $line:"; cat "$work/err-$tool"; continue; }
    t1=$(date +%s.%N)
    case $tool in coop) bytes=$stored_coop ;; *) bytes=$stored_restic ;; esac
    row "$line" "$tool" "$t0" "$t1" "$bytes" "$mbit"
  done
  # Replication across the line: the whole repository from the store behind the proxy to a
  # local one (coop replicate; restic copy into a repository with the same chunker).
  for tool in $tools; do
    dst="$work/c-$tool-$rtt"; rm -rf "$dst"; sync
    case $tool in
      coop) cmd=(env AWS_ENDPOINT_URL="$proxy" "$COOP" replicate -q --from s3://bench-coop/r --to "$dst") ;;
      restic)
        RESTIC_FROM_PASSWORD=bench restic -q -r "$dst" init --from-repo "s3:$proxy/bench-restic" --copy-chunker-params >/dev/null
        cmd=(env RESTIC_FROM_PASSWORD=bench restic -q -r "$dst" copy --from-repo "s3:$proxy/bench-restic") ;;
      rustic) continue ;;
    esac
    t0=$(date +%s.%N)
    "${cmd[@]}" >/dev/null 2>"$work/err-$tool" || { echo "$tool replication failed over $line:"; cat "$work/err-$tool"; continue; }
    t1=$(date +%s.%N)
    case $tool in coop) bytes=$stored_coop ;; *) bytes=$stored_restic ;; esac
    row "$line" "$tool copy" "$t0" "$t1" "$bytes" "$mbit"
  done
  kill "$shaper_pid" 2>/dev/null || true; wait "$shaper_pid" 2>/dev/null || true; shaper_pid=""
done
