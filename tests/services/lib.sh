# shellcheck shell=bash
# Sourced by each tests/services/<service>.sh. Gives every test its own temp dir, a coop
# repository with an admin identity and two members (alice, bob) with their own identities, an
# agent.toml built from `coop recipe show`, timed steps, and cleanup of everything it started.
#
#   SERVICE=name; source "$(dirname "$0")/lib.sh"
#   step "backup" do_backup        # prints "name: backup ok (1.2 s)", or FAILED with the log tail
#
# A step runs in a subshell with `set -e` in force. What a step must hand to later steps it
# stores with `save VAR VALUE`; what must be undone at exit it registers with `defer CMD…`.
set -euo pipefail

: "${SERVICE:?set SERVICE before sourcing lib.sh}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # this directory (helpers such as xmpp_client.py)
export HERE
COOP_TEST_CACHE=${COOP_TEST_CACHE:-$HOME/.cache/coop-test}
COOP=$(command -v "${COOP_BIN:-coop}") || { echo "$SERVICE: coop not found (set COOP_BIN)" >&2; exit 1; }
COOP=$(realpath "$COOP")

T=$(mktemp -d "/tmp/coop-svc-$SERVICE.XXXXXX")
chmod 755 "$T"
: > "$T/state.sh"
: > "$T/cleanup.sh"
export XDG_CONFIG_HOME="$T/xdg/admin" XDG_CACHE_HOME="$T/xdg/cache"
export COOP_QUIET=1
unset COOP_REPO COOP_TENANT COOP_IDENTITY_FILE COOP_WRITER_KEY COOP_CONFIG COOP_JSON COOP_MEMBER

lib_exit() {
  local rc=$?
  set +e     # clean up everything, whatever fails (a killed step's `wait` returns non-zero)
  # A step still running (interrupted): stop it before undoing what it may have started.
  if [ -n "${STEP_PID:-}" ]; then kill "$STEP_PID" 2>/dev/null; wait "$STEP_PID" 2>/dev/null; fi
  # Undo in reverse order of registration; a failing undo does not stop the others.
  if [ -s "$T/cleanup.sh" ]; then
    tac "$T/cleanup.sh" > "$T/cleanup.rev"
    while IFS= read -r c; do (eval "$c") > /dev/null 2>&1 || true; done < "$T/cleanup.rev"
  fi
  if [ "$rc" != 0 ] && [ -n "${COOP_TEST_KEEP:-}" ]; then
    echo "$SERVICE: kept $T (COOP_TEST_KEEP)"
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap lib_exit EXIT
trap 'exit 130' INT TERM

# save VAR VALUE: set VAR here and in every later step.
save() { printf '%s=%q\n' "$1" "$2" >> "$T/state.sh"; printf -v "$1" '%s' "$2"; }
# defer CMD…: run CMD (one shell line) at exit, last registered first.
defer() { printf '%s\n' "$*" >> "$T/cleanup.sh"; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
SERVICE_T0=$(now)

# step NAME FUNCTION [ARGS…]: run it with its output in a log; one line of result.
step() {
  local name=$1; shift
  local t0 rc=0 log
  log="$T/logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9\n' '_').log"
  mkdir -p "$T/logs"
  t0=$(now)
  ( set -euo pipefail; trap - EXIT; source "$T/state.sh"; "$@" ) > "$log" 2>&1 < /dev/null &
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  # shellcheck disable=SC1091
  source "$T/state.sh"
  if [ "$rc" = 0 ]; then
    echo "$SERVICE: $name ok ($(secs "$t0" "$(now)") s)"
  else
    echo "$SERVICE: $name FAILED (exit $rc, $(secs "$t0" "$(now)") s); last lines of its log:"
    tail -n 40 "$log" | sed 's/^/    /'
    exit 1
  fi
}
# Called last by each test.
finish() { echo "$SERVICE: all steps ok ($(secs "$SERVICE_T0" "$(now)") s)"; }

die() { echo "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT [SECONDS]
  local i
  for ((i = 0; i < ${2:-30} * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
wait_http() { # wait_http URL [SECONDS]
  local i
  for ((i = 0; i < ${2:-60} * 10; i++)); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2; return 1
}
# kill_wait PID: stop a process we started and wait until it is gone.
kill_wait() {
  local i
  kill "$1" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# spawn VAR CMD…: start a server in the background, in the foreground mode of the server (not
# daemonized, so its pid is known at once); the pid goes into VAR for later steps, and it is
# stopped at exit whatever happens. Its output goes to $T/logs/VAR.out.
spawn() {
  local var=$1; shift
  mkdir -p "$T/logs"
  "$@" >> "$T/logs/$var.out" 2>&1 < /dev/null &
  save "$var" $!
  defer "source '$T/state.sh'; kill_wait \"\$$var\""
}

# need_apt PKG…: install the Debian packages that are missing. Package scripts do not
# start their services where policy-rc.d forbids it; the tests never use those instances.
# apt-get runs from / and with a clean environment: maintainer scripts inherit both, and
# redmine's postinst runs Bundler, which follows the caller's directory and the test's own
# BUNDLE_GEMFILE / RAILS_ENV (it failed on a fresh machine: "error parsing Gemfile" in the
# test's temporary directory).
need_apt() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  echo "$SERVICE: installing ${missing[*]} (apt-get)"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  local clean=(env -i PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
  (cd / && "${sudo[@]}" "${clean[@]}" apt-get update -qq) > /dev/null
  (cd / && "${sudo[@]}" "${clean[@]}" apt-get install -y -qq "${missing[@]}") > "$T/apt.log" 2>&1 \
    || { tail -n 30 "$T/apt.log"; die "$SERVICE: apt-get install ${missing[*]} failed"; }
}

# --- coop ---------------------------------------------------------------------------------

# A repository with an admin identity, and members alice and bob with their own identities.
coop_setup() {
  need_apt jq curl
  REPO="$T/repo"
  ADMIN_ID="$XDG_CONFIG_HOME/coop/identity.txt"
  "$COOP" init --repo "$REPO" > /dev/null 2>&1 || "$COOP" init --repo "$REPO"
  local m pk
  for m in alice bob; do
    XDG_CONFIG_HOME="$T/xdg/$m" "$COOP" init --repo "$T/xdg/$m-scratch" > /dev/null 2>&1
    pk=$(sed -n 's/^# public key: //p' "$T/xdg/$m/coop/identity.txt")
    [ -n "$pk" ] || die "no public key in $T/xdg/$m/coop/identity.txt"
    "$COOP" member add "$m" --repo "$REPO" --recipient "$pk"
  done
  rm -rf "$T/xdg/alice-scratch" "$T/xdg/bob-scratch"
}
REPO="$T/repo"
ADMIN_ID="$XDG_CONFIG_HOME/coop/identity.txt"
member_id() { echo "$T/xdg/$1/coop/identity.txt"; }

# write_agent_config RECIPE --set VAR=VALUE…: $T/agent.toml = a [site] for $REPO plus the
# recipe's job blocks exactly as `coop recipe show` prints them; then `coop config check`.
write_agent_config() {
  {
    echo "[site]"
    echo "name = \"test-$SERVICE\""
    echo "repo = \"$REPO\""
    echo "identity_file = \"$ADMIN_ID\""
    echo "cache_dir = \"$T/agent-cache\""
    echo
    "$COOP" recipe show "$@"
  } > "$T/agent.toml"
  cat "$T/agent.toml"
  if grep -n 'FILL IN' "$T/agent.toml"; then die "a recipe variable was left unfilled"; fi
  "$COOP" config check "$T/agent.toml"
}
agent_once() { "$COOP" agent --config "$T/agent.toml" --once "$1"; }
# job_snapshot JOB: the newest snapshot the agent made for JOB (tagged job:JOB), as the guides do.
job_snapshot() {
  "$COOP" snapshots --repo "$REPO" --identity-file "$ADMIN_ID" --tag "job:$1" --json | jq -r '.[-1].id'
}
# Restore/dump as the admin.
c_restore() { "$COOP" restore --repo "$REPO" --identity-file "$ADMIN_ID" "$@"; }
c_dump() { "$COOP" dump --repo "$REPO" --identity-file "$ADMIN_ID" "$@"; }
# member_export NAME DIR: the member's own export, with the member's own identity.
member_export() {
  rm -rf "$2"
  "$COOP" export --repo "$REPO" --member "$1" --identity-file "$(member_id "$1")" --out "$2/"
  "$COOP" verify "$2"
  find "$2" -type f | sort
}
# assert_has DIR TEXT / assert_lacks DIR TEXT: grep the whole tree (binary files too).
assert_has() { grep -rqaF -- "$2" "$1" || die "expected '$2' somewhere under $1"; }
assert_lacks() {
  if grep -rlaF -- "$2" "$1"; then die "'$2' must not be under $1 (files above)"; fi
}

# --- PostgreSQL -----------------------------------------------------------------------------

# pg_server: the suite's server when COOP_TEST_PG_HOST/PORT/PGBIN are set (PG_SHARED=1), else a
# private cluster in $T/pg, stopped at exit. Sets PGBIN, PGH (host or socket dir), PGP (port).
pg_server() {
  if [ -n "${COOP_TEST_PG_PORT:-}" ]; then
    save PG_SHARED 1
    save PGBIN "${COOP_TEST_PGBIN:?COOP_TEST_PGBIN must be set with COOP_TEST_PG_PORT}"
    save PGH "${COOP_TEST_PG_HOST:-127.0.0.1}"
    save PGP "$COOP_TEST_PG_PORT"
  else
    save PG_SHARED ""
    need_apt postgresql
    save PGBIN "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    save PGH "$T/pg"
    save PGP "$(free_port)"
    defer "source '$T/state.sh'; pg_stop_cluster"
    pg_new_cluster
  fi
}
# A new, empty cluster: superuser postgres trusted on the socket, passwords on TCP.
pg_new_cluster() {
  rm -rf "$T/pg"; mkdir -p "$T/pg"; chown postgres "$T/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust --auth-host=scram-sha-256 > /dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w \
    -o "-p $PGP -k $T/pg -c listen_addresses=127.0.0.1" start
}
pg_stop_cluster() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -m fast -w stop; }
# psql as the superuser (as the postgres system user, like the recipes).
psql_su() { (cd / && runuser -u postgres -- "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGH" -p "$PGP" -U postgres "$@"); }
