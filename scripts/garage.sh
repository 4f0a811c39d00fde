#!/usr/bin/env bash
# Sourced by scripts/test.sh: a real three-node Garage cluster on loopback (three zones,
# replication factor 3, consistent mode), for tests/garage.rs. Garage is built from crates.io
# once and cached in ${COOP_TEST_CACHE:-~/.cache/coop-test} (15 to 20 minutes cold on 2 cores).
# Exports COOP_TEST_GARAGE_ENDPOINT, _KEY_ID, _SECRET, _BUCKET, _DIR (node configs and pid
# files: the tests stop and restart nodes) and _BIN. Stopped when the calling shell exits.
# COOP_TEST_GARAGE=0 skips it; `start_garage N` starts N nodes (benches/network.sh: one).

GARAGE_VERSION=2.5.0
garage_root="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/garage-$GARAGE_VERSION"
garage_bin="$garage_root/bin/garage"

start_garage() { # [NODES: 3 by default, one zone each; replication factor = NODES]
  local nodes=${1:-3}
  if [ ! -x "$garage_bin" ]; then
    echo "== building Garage $GARAGE_VERSION from crates.io into $garage_root (once; 15 to 20 minutes)"
    local t0=$SECONDS
    cargo install garage --version "$GARAGE_VERSION" --locked --root "$garage_root" -q \
      || { echo "Garage did not build"; return 1; }
    echo "== Garage built in $((SECONDS - t0)) s"
  fi
  local dir; dir="$(mktemp -d /tmp/coop-test-garage.XXXXXX)"
  local secret; secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  local token; token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  local s3port; s3port=$(free_port)
  local i
  for i in $(seq "$nodes"); do
    local rpc; rpc=$(free_port)
    local api; api=$([ "$i" = 1 ] && echo "$s3port" || free_port)
    local admin; admin=$(free_port)
    mkdir -p "$dir/n$i/meta" "$dir/n$i/data"
    cat > "$dir/n$i.toml" <<EOF
metadata_dir = "$dir/n$i/meta"
data_dir = "$dir/n$i/data"
db_engine = "sqlite"
replication_factor = $nodes
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$api"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$token"
EOF
    "$garage_bin" -c "$dir/n$i.toml" server > "$dir/n$i.log" 2>&1 &
    echo $! > "$dir/n$i.pid"
  done
  local g=("$garage_bin" -c "$dir/n1.toml")
  local n
  for n in $(seq 100); do "${g[@]}" status > /dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq 2 "$nodes"); do
    local id=""
    for n in $(seq 100); do id=$("$garage_bin" -c "$dir/n$i.toml" node id -q 2>/dev/null) && break; sleep 0.1; done
    "${g[@]}" node connect "$id" > /dev/null || { cat "$dir/n$i.log"; return 1; }
  done
  for i in $(seq "$nodes"); do
    local id; id=$("$garage_bin" -c "$dir/n$i.toml" node id -q | cut -d@ -f1)
    "${g[@]}" layout assign -z "zone$i" -c 1G "$id" > /dev/null
  done
  "${g[@]}" layout apply --version 1 > /dev/null
  "${g[@]}" bucket create coop > /dev/null
  "${g[@]}" key create coop-test > /dev/null
  "${g[@]}" bucket allow --read --write --owner coop --key coop-test > /dev/null
  local info; info=$("${g[@]}" key info --show-secret coop-test)
  export COOP_TEST_GARAGE_KEY_ID; COOP_TEST_GARAGE_KEY_ID=$(printf '%s\n' "$info" | sed -n 's/^Key ID: *//p' | head -1)
  export COOP_TEST_GARAGE_SECRET; COOP_TEST_GARAGE_SECRET=$(printf '%s\n' "$info" | sed -n 's/^Secret key: *//p' | head -1)
  export COOP_TEST_GARAGE_ENDPOINT="http://127.0.0.1:$s3port" COOP_TEST_GARAGE_BUCKET=coop
  export COOP_TEST_GARAGE_DIR="$dir" COOP_TEST_GARAGE_BIN="$garage_bin"
  GARAGE_DIR="$dir"
  echo "== Garage: $nodes node(s), S3 on $COOP_TEST_GARAGE_ENDPOINT"
}

stop_garage() {
  [ -n "${GARAGE_DIR:-}" ] || return 0
  local p
  for p in "$GARAGE_DIR"/n*.pid; do kill "$(cat "$p")" 2>/dev/null; done
  rm -rf "$GARAGE_DIR"
}

if [ "${COOP_TEST_GARAGE:-1}" != 0 ]; then
  start_garage || { echo "Garage did not start"; exit 1; }
fi
