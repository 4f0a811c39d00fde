#!/usr/bin/env bash
# PostgreSQL recipe, for real: two roles with a database each, backup through
# `coop agent --once postgresql`, a fresh cluster restored as docs/recipes/postgresql.md says,
# logins as the roles, then alice's member job and her export (her database, not bob's).
# Uses the server in COOP_TEST_PG_HOST/PORT/PGBIN when set (scripts/test.sh starts one; there
# "destroy" drops this test's databases and roles), else initdb's its own cluster.
SERVICE=postgresql
source "$(dirname "$0")/lib.sh"

ALICE_ROW="alice-row-$RANDOM-kestrel"
BOB_ROW="bob-row-$RANDOM-heron"

# psql_as ROLE DB SQL: log in over TCP with the role's password.
psql_as() { PGPASSWORD="$1-pw" "$PGBIN/psql" -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGP" -U "$1" -d "$2" -c "$3"; }

setup() {
  pg_server
  if [ -n "$PG_SHARED" ]; then drop_ours; defer "source '$T/state.sh'; drop_ours"; fi
  coop_setup
}
drop_ours() {
  psql_su -d postgres -c "DROP DATABASE IF EXISTS coopsvc_alice" -c "DROP DATABASE IF EXISTS coopsvc_bob" \
    -c "DROP ROLE IF EXISTS alice" -c "DROP ROLE IF EXISTS bob"
}

create_data() {
  local m row
  for m in alice bob; do
    [ $m = alice ] && row=$ALICE_ROW || row=$BOB_ROW
    psql_su -d postgres -c "CREATE ROLE $m LOGIN PASSWORD '$m-pw'" \
      -c "CREATE DATABASE coopsvc_$m OWNER $m" -c "ALTER DATABASE coopsvc_$m SET work_mem = '7MB'"
    psql_as $m coopsvc_$m "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
      INSERT INTO notes (body) VALUES ('$row'), ('second note of $m');"
  done
  psql_as bob coopsvc_bob "GRANT SELECT ON notes TO alice"
}

backup() {
  write_agent_config postgresql --set PG_HOST="$PGH" --set PG_PORT="$PGP" --set PGBIN="$PGBIN"
  agent_once postgresql
  "$COOP" ls --repo "$REPO" --identity-file "$ADMIN_ID" latest /postgresql
}

destroy() {
  if [ -n "$PG_SHARED" ]; then drop_ours; else pg_stop_cluster; pg_new_cluster; fi
  if psql_as alice coopsvc_alice "SELECT 1"; then die "alice can still log in"; fi
}

# docs/recipes/postgresql.md, "Restore".
restore() {
  local dir="$T/restore/postgresql" f db
  c_restore "$(job_snapshot postgresql):/postgresql" --target "$dir"
  psql_su -v ON_ERROR_STOP=0 -d postgres -f - < "$dir/globals.sql" 2>&1 | grep -v 'already exists' || true
  for f in "$dir"/*.dump; do
    db=$(basename "$f" .dump)
    if [ -n "$PG_SHARED" ] && [[ $db != coopsvc_* ]]; then continue; fi  # a shared server keeps its others
    if [ "$db" = postgres ]; then
      runuser -u postgres -- "$PGBIN/pg_restore" -h "$PGH" -p "$PGP" -U postgres --exit-on-error -d postgres < "$f"
    else
      runuser -u postgres -- "$PGBIN/pg_restore" -h "$PGH" -p "$PGP" -U postgres --exit-on-error --create -d postgres < "$f"
    fi
  done
}

check_users() {
  psql_as alice coopsvc_alice "SELECT body FROM notes" | grep -qx "$ALICE_ROW"
  psql_as bob coopsvc_bob "SELECT body FROM notes" | grep -qx "$BOB_ROW"
  # the grant (in bob's archive) and the database setting (pg_restore --create) came back
  psql_as alice coopsvc_bob "SELECT body FROM notes" | grep -qx "$BOB_ROW"
  psql_as alice coopsvc_alice "SHOW work_mem" | grep -qx 7MB
  # wrong passwords are refused (the role's password hash came back with the globals)
  if [ -z "$PG_SHARED" ] && PGPASSWORD=wrong "$PGBIN/psql" -X -h 127.0.0.1 -p "$PGP" -U alice -d coopsvc_alice -c 'SELECT 1'; then
    die "a wrong password was accepted"
  fi
}

member_export_check() {
  agent_once postgresql-members
  member_export alice "$T/export"
  local f
  f=$(find "$T/export" -name coopsvc_alice.dump) ; [ -n "$f" ] || die "no coopsvc_alice.dump in the export"
  [ -z "$(find "$T/export" -name 'coopsvc_bob*')" ] || die "bob's database is in alice's export"
  "$PGBIN/pg_restore" -f "$T/alice.sql" "$f"
  grep -q "$ALICE_ROW" "$T/alice.sql"
  assert_lacks "$T/export" "$BOB_ROW"
  ! grep -q "$BOB_ROW" "$T/alice.sql"
}

step setup setup
step "create data (2 roles, 2 databases)" create_data
step backup backup
step "destroy cluster" destroy
step restore restore
step "users see their data" check_users
step "member export (alice only)" member_export_check
finish
