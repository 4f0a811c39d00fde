#!/usr/bin/env bash
# Matrix Synapse recipe, for real: Synapse from PyPI (a venv cached under $COOP_TEST_CACHE) on
# PostgreSQL; alice and bob exchange messages and media through the client-server API (curl);
# `coop agent --once synapse`; database, config and media wiped; restored as
# docs/recipes/synapse.md says; both log in, read the messages and download the media; then
# alice's member job (admin_cmd export-data plus her media files) and her export, which holds
# her data and none of bob's private data.
SERVICE=synapse
source "$(dirname "$0")/lib.sh"

SYNAPSE_VERSION=1.163.2
VENV="$COOP_TEST_CACHE/synapse-venv-$SYNAPSE_VERSION"
S="$T/synapse"          # stands for a server: etc/ (config, signing key), media/, data/ (pid, logs)
SERVER=coop.test
DB=coopsvc_synapse
ALICE_TEXT="alice-says-$RANDOM-godwit"
BOB_REPLY="bob-replies-$RANDOM-avocet"
BOB_SECRET="bob-private-$RANDOM-shrike"
ALICE_MEDIA="alice-media-$RANDOM-$RANDOM"
BOB_MEDIA="bob-media-$RANDOM-$RANDOM"

need_venv() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import synapse, psycopg2' 2>/dev/null && return 0
  echo "installing matrix-synapse $SYNAPSE_VERSION into $VENV (pip)"
  rm -rf "$VENV"; mkdir -p "$COOP_TEST_CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-input "matrix-synapse==$SYNAPSE_VERSION" 'psycopg2-binary==2.9.13'
}

start() {
  spawn SYNAPSE_PID "$VENV/bin/python" -m synapse.app.homeserver -c "$S/etc/homeserver.yaml"
  wait_http "http://127.0.0.1:$HS_PORT/_matrix/client/versions" 60
}
stop() { kill_wait "$SYNAPSE_PID"; }

configure() {
  mkdir -p "$S/data" "$S/media"
  "$VENV/bin/python" -m synapse.app.homeserver --server-name "$SERVER" --config-path "$S/etc/homeserver.yaml" \
    --data-directory "$S/data" --generate-config --report-stats=no
  "$VENV/bin/python" - "$S" "$HS_PORT" "$PGH" "$PGP" "$DB" <<'PY'
import sys, yaml
s, port, pgh, pgp, db = sys.argv[1:]
p = f"{s}/etc/homeserver.yaml"
c = yaml.safe_load(open(p))
c["listeners"] = [{"port": int(port), "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                   "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}]
c["database"] = {"name": "psycopg2", "args": {"user": "postgres", "host": pgh, "port": int(pgp),
                 "database": db, "cp_min": 1, "cp_max": 5}}
c["media_store_path"] = f"{s}/media"
c["trusted_key_servers"] = []
c["suppress_key_server_warning"] = True
many = {"per_second": 1000, "burst_count": 1000}
c["rc_message"] = many
c["rc_registration"] = many
c["rc_login"] = {"address": many, "account": many, "failed_attempts": many}
yaml.safe_dump(c, open(p, "w"))
PY
  sed -i "s|filename: .*|filename: $S/data/homeserver.log|" "$S/etc/$SERVER.log.config"
}

setup() {
  need_apt curl python3-venv
  need_venv
  pg_server
  save HS_PORT "$(free_port)"
  coop_setup
  psql_su -d postgres -c "DROP DATABASE IF EXISTS $DB"
  psql_su -d postgres -c "CREATE DATABASE $DB ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
  defer "source '$T/state.sh'; psql_su -d postgres -c 'DROP DATABASE IF EXISTS $DB'"
  configure
  start
}

# --- the client-server API ---
api() { # api TOKEN METHOD PATH [JSON]
  curl -sS -f -X "$2" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$HS_PORT/_matrix/client/v3$3" -d "${4:-{\}}"
}
login() {
  curl -sS -f -X POST "http://127.0.0.1:$HS_PORT/_matrix/client/v3/login" \
    -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$1\"},\"password\":\"$2\"}" \
    | jq -er .access_token
}
upload() { # upload TOKEN TEXT -> mxc://…
  printf '%s' "$2" | curl -sS -f -X POST -H "Authorization: Bearer $1" -H 'Content-Type: text/plain' \
    --data-binary @- "http://127.0.0.1:$HS_PORT/_matrix/media/v3/upload?filename=note.txt" | jq -er .content_uri
}
download() { # download TOKEN mxc://server/id
  curl -sS -f -H "Authorization: Bearer $1" "http://127.0.0.1:$HS_PORT/_matrix/client/v1/media/download/${2#mxc://}"
}
messages() { # messages TOKEN ROOM: the bodies, newest first
  api "$1" GET "/rooms/$2/messages?dir=b&limit=50" | jq -r '.chunk[] | select(.type == "m.room.message") | .content.body'
}

create_data() {
  local u ta tb room secret mxa mxb
  for u in alice bob; do
    "$VENV/bin/register_new_matrix_user" -c "$S/etc/homeserver.yaml" -u $u -p "$u-pw" --no-admin "http://127.0.0.1:$HS_PORT"
  done
  ta=$(login alice alice-pw); tb=$(login bob bob-pw)
  room=$(api "$ta" POST /createRoom '{"preset":"private_chat","name":"coop chat","invite":["@bob:'$SERVER'"]}' | jq -er .room_id)
  api "$tb" POST "/join/$room"
  api "$ta" PUT "/rooms/$room/send/m.room.message/a1" '{"msgtype":"m.text","body":"'"$ALICE_TEXT"'"}'
  mxa=$(upload "$ta" "$ALICE_MEDIA")
  api "$ta" PUT "/rooms/$room/send/m.room.message/a2" '{"msgtype":"m.file","body":"note.txt","url":"'"$mxa"'"}'
  api "$tb" PUT "/rooms/$room/send/m.room.message/b1" '{"msgtype":"m.text","body":"'"$BOB_REPLY"'"}'
  # bob's own: a room only he is in, a file he uploads there, his account data
  secret=$(api "$tb" POST /createRoom '{"preset":"private_chat","name":"bob alone"}' | jq -er .room_id)
  mxb=$(upload "$tb" "$BOB_MEDIA")
  api "$tb" PUT "/rooms/$secret/send/m.room.message/b2" '{"msgtype":"m.text","body":"'"$BOB_SECRET"'"}'
  api "$tb" PUT "/rooms/$secret/send/m.room.message/b3" '{"msgtype":"m.file","body":"mine.txt","url":"'"$mxb"'"}'
  api "$tb" PUT "/user/@bob:$SERVER/account_data/coop.test.note" '{"note":"'"$BOB_SECRET-account"'"}'
  save ROOM "$room"; save SECRET_ROOM "$secret"; save MXC_A "$mxa"; save MXC_B "$mxb"
  find "$S/media" -type f
}

backup() {
  write_agent_config synapse --set SERVER_NAME=$SERVER --set SYNAPSE_CONFIG="$S/etc/homeserver.yaml" \
    --set CONFIG_DIR="$S/etc" --set SIGNING_KEY="$S/etc/$SERVER.signing.key" --set MEDIA_STORE="$S/media" \
    --set SYNAPSE_PYTHON="$VENV/bin/python" --set DB_NAME=$DB --set PG_HOST="$PGH" --set PG_PORT="$PGP" \
    --set PGBIN="$PGBIN"
  agent_once synapse
  "$COOP" ls --repo "$REPO" --identity-file "$ADMIN_ID" "$(job_snapshot synapse)"
}

destroy() {
  stop
  psql_su -d postgres -c "DROP DATABASE $DB"
  rm -rf "$S"
}

# docs/recipes/synapse.md, "Restore".
restore() {
  local snap
  snap=$(job_snapshot synapse)
  c_restore "$snap:$S/etc" --target "$S/etc"
  c_restore "$snap:$S/media" --target "$S/media"
  psql_su -d postgres -c "CREATE DATABASE $DB ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
  c_dump "$snap" /synapse.dump | runuser -u postgres -- "$PGBIN/pg_restore" -h "$PGH" -p "$PGP" -U postgres \
    --no-owner --exit-on-error -d $DB
  mkdir -p "$S/data"
  start
}

check_users() {
  local ta tb
  ta=$(login alice alice-pw); tb=$(login bob bob-pw)
  messages "$ta" "$ROOM" | grep -qx "$ALICE_TEXT"
  messages "$tb" "$ROOM" | grep -qx "$ALICE_TEXT"
  messages "$tb" "$ROOM" | grep -qx "$BOB_REPLY"
  messages "$tb" "$SECRET_ROOM" | grep -qx "$BOB_SECRET"
  [ "$(download "$tb" "$MXC_A")" = "$ALICE_MEDIA" ]
  [ "$(download "$tb" "$MXC_B")" = "$BOB_MEDIA" ]
  api "$tb" GET "/user/@bob:$SERVER/account_data/coop.test.note" | grep -q "$BOB_SECRET-account"
  if login alice wrong-pw; then die "a wrong password was accepted"; fi
}

member_export_check() {
  agent_once synapse-members
  member_export alice "$T/export"
  assert_has "$T/export" "$ALICE_TEXT"
  assert_has "$T/export" "$BOB_REPLY"         # bob's message in the room they share is alice's too
  assert_has "$T/export" "$ALICE_MEDIA"       # her uploaded file itself, not only its ID
  find "$T/export" -path "*/media/${MXC_A##*/}" | grep -q .
  assert_lacks "$T/export" "$BOB_SECRET"
  assert_lacks "$T/export" "$BOB_MEDIA"
  assert_lacks "$T/export" "${MXC_B##*/}"
}

step setup setup
step "create data (2 users, messages, media)" create_data
step backup backup
step "destroy server (database, config, media)" destroy
step restore restore
step "users see messages and media" check_users
step "member export (alice only)" member_export_check
finish
