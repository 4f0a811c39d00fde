#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs and starts the servers the tests need, on loopback:
#   moto (a real S3 server, from PyPI)   -> COOP_TEST_S3_ENDPOINT, COOP_TEST_MOTO_BIN
#   PostgreSQL (Debian's packages)       -> COOP_TEST_PG_HOST, COOP_TEST_PG_PORT, COOP_TEST_PGBIN
#   faketime (Debian's packages)         -> on PATH
# Both are stopped when the calling shell exits. COOP_TEST_SERVICES=0 starts neither.

services_dir="$(mktemp -d /tmp/coop-test-services.XXXXXX)"
chmod 755 "$services_dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { python3 - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1); sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
}

# moto's virtualenv (with boto3, which the benchmarks use to list a bucket); sets MOTO_VENV.
moto_venv() {
  MOTO_VENV="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/venv-moto-5.2.5"
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    echo "== installing moto (S3 test server) into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --no-input 'moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5'
  fi
}

start_moto() {
  moto_venv || return 1
  local venv=$MOTO_VENV
  local port; port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$services_dir/moto.log" 2>&1 &
  MOTO_PID=$!
  wait_http "http://127.0.0.1:$port/moto-api/" || { echo "moto did not start:"; cat "$services_dir/moto.log"; return 1; }
  export COOP_TEST_S3_ENDPOINT="http://127.0.0.1:$port" COOP_TEST_MOTO_BIN="$venv/bin/moto_server"
  echo "== moto S3 server on $COOP_TEST_S3_ENDPOINT"
}

# Package installs run from / : maintainer scripts run in the caller's directory.
apt_install() {
  echo "== installing $* from Debian's packages"
  if [ "$(id -u)" = 0 ]; then
    (cd / && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    (cd / && sudo -n apt-get install -y -qq "$@") >/dev/null
  fi
}

start_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
  fi
  COOP_TEST_PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local dir="$services_dir/pg" port; port=$(free_port)
  mkdir -p "$dir"
  local run=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; run=(su postgres -s /bin/sh -c); else run=(sh -c); fi
  "${run[@]}" "$COOP_TEST_PGBIN/initdb -D $dir/data -A trust -U postgres" > "$services_dir/initdb.log" 2>&1 \
    || { cat "$services_dir/initdb.log"; return 1; }
  "${run[@]}" "$COOP_TEST_PGBIN/pg_ctl -D $dir/data -l $dir/log -w -o '-p $port -k $dir -c listen_addresses=127.0.0.1' start" > /dev/null \
    || { cat "$dir/log"; return 1; }
  PG_STOP=("${run[@]}" "$COOP_TEST_PGBIN/pg_ctl -D $dir/data -m fast stop")
  export COOP_TEST_PG_HOST=127.0.0.1 COOP_TEST_PG_PORT="$port" COOP_TEST_PGBIN
  echo "== PostgreSQL on 127.0.0.1:$port"
}

stop_services() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null
  [ -n "${PG_STOP:-}" ] && "${PG_STOP[@]}" >/dev/null 2>&1
  rm -rf "$services_dir"
}
trap stop_services EXIT
# COOP_TEST_SERVICES=0: only define the functions (the benchmarks start what they need).
if [ "${COOP_TEST_SERVICES:-1}" != 0 ]; then
  # faketime: the trust tests date a thief's snapshots in the future.
  command -v faketime >/dev/null || apt_install faketime
  start_moto
  start_postgres
fi
