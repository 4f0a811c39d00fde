#!/usr/bin/env bash
# Prosody recipe, for real: users alice, bob (members) and carol; rosters, offline messages and
# the message archive filled through XMPP (slixmpp); `coop agent --once prosody` (stop, copy,
# start); the data directory wiped; restored as docs/recipes/prosody.md says; the users log in
# and get their roster and offline messages; then alice's member job (her store files, found by
# a glob) and her export, which holds her data and none of bob's.
SERVICE=prosody
source "$(dirname "$0")/lib.sh"

P="$T/prosody"          # stands for a server: etc/ (config), data/ (data_path), run/
HOST=coop.test
XMPP="$HERE/xmpp_client.py"
A_ROSTER="alice-calls-him-bob-$RANDOM"
B_ROSTER="bob-secret-contact-$RANDOM"
TO_ALICE="carol-to-alice-$RANDOM-curlew"
TO_BOB="carol-to-bob-$RANDOM-dunlin"

pctl() { prosodyctl --config "$P/etc/prosody.cfg.lua" "$@"; }
start() { pctl start; wait_port "$XMPP_PORT"; }
stop() { pctl stop; }
xmpp() { local u=$1; shift; /usr/bin/python3 "$XMPP" "$XMPP_PORT" "$u@$HOST" "$u-pw" "$@"; }

write_config() {
  mkdir -p "$P/etc/certs" "$P/data" "$P/run" "$P/log"
  cat > "$P/etc/prosody.cfg.lua" <<CONF
pidfile = "$P/run/prosody.pid"
data_path = "$P/data"
certificates = "$P/etc/certs"
interfaces = { "127.0.0.1" }
c2s_ports = { $XMPP_PORT }
c2s_direct_tls_ports = { }
modules_enabled = { "roster", "saslauth", "disco", "private", "vcard_legacy", "mam", "offline", "ping", "admin_shell", "posix" }
modules_disabled = { "s2s", "tls" }
storage = "internal"
authentication = "internal_hashed"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
archive_expires_after = "never"
log = { info = "$P/log/prosody.log" }
VirtualHost "$HOST"
CONF
  chown -R prosody: "$P/data" "$P/run" "$P/log"
}

setup() {
  need_apt prosody python3-slixmpp
  save XMPP_PORT "$(free_port)"
  coop_setup
  write_config
  defer "source '$T/state.sh'; stop"
  start
  local u
  for u in alice bob carol; do pctl register $u $HOST "$u-pw"; done
}

create_data() {
  xmpp alice roster-add bob@$HOST "$A_ROSTER"
  xmpp bob roster-add carol@$HOST "$B_ROSTER"
  # alice and bob are offline: these wait as offline messages (and are archived)
  xmpp carol send alice@$HOST "$TO_ALICE" send bob@$HOST "$TO_BOB"
  find "$P/data"
}

backup() {
  write_agent_config prosody --set DATA_DIR="$P/data" --set CONFIG_DIR="$P/etc" \
    --set HOST_DIR="${HOST//./%2e}" \
    --set STOP="prosodyctl --config $P/etc/prosody.cfg.lua stop" \
    --set START="prosodyctl --config $P/etc/prosody.cfg.lua start"
  agent_once prosody
  wait_port "$XMPP_PORT"     # the after hook started it again
  "$COOP" ls --repo "$REPO" --identity-file "$ADMIN_ID" "$(job_snapshot prosody)" | grep -q 'offline/alice.list'
  if "$COOP" ls --repo "$REPO" --identity-file "$ADMIN_ID" "$(job_snapshot prosody)" | grep prosody.sock; then
    die "the admin socket was backed up"
  fi
}

destroy() { stop; rm -rf "$P"; }

# docs/recipes/prosody.md, "Restore".
restore() {
  local snap
  snap=$(job_snapshot prosody)
  c_restore "$snap:$P/etc" --target "$P/etc"
  c_restore "$snap:$P/data" --target "$P/data"
  mkdir -p "$P/run" "$P/log"
  chown -R prosody: "$P/data" "$P/run" "$P/log"
  start
}

check_users() {
  xmpp alice expect-roster bob@$HOST "$A_ROSTER" expect-message "$TO_ALICE"
  xmpp bob expect-roster carol@$HOST "$B_ROSTER" expect-message "$TO_BOB" expect-mam "$TO_BOB"
  if /usr/bin/python3 "$XMPP" "$XMPP_PORT" "alice@$HOST" wrong-pw send bob@$HOST x; then
    die "a wrong password was accepted"
  fi
}

member_export_check() {
  agent_once prosody-members
  member_export alice "$T/export"
  # docs/recipes/prosody.md: STORE/alice.dat or .list, below the export's files/.
  for f in accounts/alice.dat roster/alice.dat archive/alice.list; do
    [ -f "$T/export/files/$f" ] || die "alice's export lacks files/$f"
  done
  [ -z "$(cd "$T/export/files" && find . -type f ! -path './*/alice.*')" ] \
    || die "alice's export holds files outside STORE/alice.*"
  assert_has "$T/export" "$A_ROSTER"
  assert_has "$T/export" "$TO_ALICE"      # in her archive (the offline copy was delivered)
  assert_lacks "$T/export" "$B_ROSTER"
  assert_lacks "$T/export" "$TO_BOB"
  [ -z "$(find "$T/export" -name 'bob.*' -o -name 'carol.*')" ] || die "another user's store file is in alice's export"
}

step setup setup
step "create data (rosters, offline messages, archive)" create_data
step "backup (stop, copy, start)" backup
step "destroy server" destroy
step restore restore
step "users see roster and messages over XMPP" check_users
step "member export (alice only)" member_export_check
finish
