#!/usr/bin/env bash
# Dovecot recipe, for real: an IMAP server with mail_crypt (global keys) and two users with mail
# in two folders (doveadm save); `coop agent --once dovecot`; everything wiped; restored as
# docs/recipes/dovecot.md says; the users log in over IMAP and read their mail; then alice's
# member job (a plaintext dsync copy) and her export, which holds her mail and none of bob's.
SERVICE=dovecot
source "$(dirname "$0")/lib.sh"

D="$T/dovecot"          # stands for / of a mail server: etc/, vmail/, run/
DOMAIN=coop.test
ALICE_TEXT="alice-mail-$RANDOM-lapwing"
ALICE_TEXT2="alice-project-$RANDOM-plover"
BOB_TEXT="bob-mail-$RANDOM-bittern"
VUSER=mail              # an existing unprivileged system user owns the maildirs (uid 8)

dv() { doveadm -c "$D/etc/dovecot.conf" "$@"; }

write_config() {
  mkdir -p "$D/etc/crypt" "$D/vmail" "$D/run" "$D/state" "$D/log"
  chown "$VUSER:" "$D/vmail"
  cat > "$D/etc/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $D/run
state_dir = $D/state
log_path = $D/log/dovecot.log
instance_name = coop-test-$$
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 8
mail_plugins = \$mail_plugins mail_crypt
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $D/etc/users
}
userdb {
  driver = passwd-file
  args = $D/etc/users
  default_fields = uid=$VUSER gid=$VUSER home=$D/vmail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
plugin {
  mail_crypt_global_private_key = <$D/etc/crypt/ecprivkey.pem
  mail_crypt_global_public_key = <$D/etc/crypt/ecpubkey.pem
  mail_crypt_save_version = 2
}
CONF
}

start() {
  spawn DOVECOT_PID dovecot -F -c "$D/etc/dovecot.conf"
  wait_port "$IMAP_PORT"
}
stop() { kill_wait "$DOVECOT_PID"; }

setup() {
  need_apt dovecot-imapd openssl
  save IMAP_PORT "$(free_port)"
  coop_setup
  write_config
  openssl ecparam -name prime256v1 -genkey -noout | openssl pkey -out "$D/etc/crypt/ecprivkey.pem"
  openssl pkey -in "$D/etc/crypt/ecprivkey.pem" -pubout -out "$D/etc/crypt/ecpubkey.pem"
  local m
  for m in alice bob; do
    echo "$m@$DOMAIN:$(doveadm pw -s SHA512-CRYPT -p "$m-pw")::::::" >> "$D/etc/users"
  done
  start
}

mail() { # mail TO SUBJECT BODY
  printf 'From: someone@example.org\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n%s\r\n' "$1" "$2" "$RANDOM$RANDOM" "$3"
}
create_data() {
  mail alice@$DOMAIN "hello alice" "$ALICE_TEXT" | dv save -u alice@$DOMAIN -m INBOX
  dv mailbox create -u alice@$DOMAIN Projects
  mail alice@$DOMAIN "project plan" "$ALICE_TEXT2" | dv save -u alice@$DOMAIN -m Projects
  mail bob@$DOMAIN "hello bob" "$BOB_TEXT" | dv save -u bob@$DOMAIN -m INBOX
  dv mailbox create -u bob@$DOMAIN Archive
  mail bob@$DOMAIN "old" "bob archive $BOB_TEXT" | dv save -u bob@$DOMAIN -m Archive
  dv flags add -u alice@$DOMAIN '\Seen' mailbox INBOX ALL
  # mail_crypt is on: the text is not on disk in the clear
  assert_lacks "$D/vmail" "$ALICE_TEXT"
  imap_check alice INBOX "$ALICE_TEXT"
}

# imap_check USER FOLDER TEXT: log in over IMAP, the folder has a message containing TEXT.
imap_check() {
  python3 - "$IMAP_PORT" "$1@$DOMAIN" "$1-pw" "$2" "$3" <<'PY'
import imaplib, sys
port, user, pw, folder, text = sys.argv[1:]
m = imaplib.IMAP4("127.0.0.1", int(port))
m.login(user, pw)
typ, boxes = m.list()
typ, _ = m.select(folder, readonly=True)
assert typ == "OK", (folder, boxes)
typ, data = m.search(None, "ALL")
ids = data[0].split()
bodies = [m.fetch(i, "(RFC822)")[1][0][1].decode() for i in ids]
assert any(text in b for b in bodies), (user, folder, bodies)
print(user, folder, len(ids), "message(s) ok; folders:", [b.decode() for b in boxes])
PY
}

backup() {
  write_agent_config dovecot --set DOVECOT_CONF="$D/etc/dovecot.conf" --set CONFIG_DIR="$D/etc" \
    --set USERS_FILE="$D/etc/users" --set CRYPT_KEY_DIR="$D/etc/crypt" --set VMAIL="$D/vmail" \
    --set VMAIL_USER="$VUSER" --set MAIL_DOMAIN="$DOMAIN"
  agent_once dovecot
}

destroy() { stop; rm -rf "$D"; }

# docs/recipes/dovecot.md, "Restore".
restore() {
  local snap
  snap=$(job_snapshot dovecot)
  c_restore "$snap:$D/etc" --target "$D/etc"            # config, users file and crypt keys (under etc here)
  c_restore "$snap:$D/vmail" --target "$D/vmail"
  ls -l "$D/etc/users" "$D/etc/crypt/ecprivkey.pem"
  mkdir -p "$D/run" "$D/state" "$D/log"
  chown -R "$VUSER:" "$D/vmail"
  start
  dv force-resync -A '*'
}

check_users() {
  imap_check alice INBOX "$ALICE_TEXT"
  imap_check alice Projects "$ALICE_TEXT2"
  imap_check bob INBOX "$BOB_TEXT"
  imap_check bob Archive "$BOB_TEXT"
  dv fetch -u alice@$DOMAIN flags mailbox INBOX all | grep -q Seen
  python3 -c "
import imaplib,sys
m=imaplib.IMAP4('127.0.0.1',$IMAP_PORT)
try: m.login('alice@$DOMAIN','wrong'); sys.exit('wrong password accepted')
except imaplib.IMAP4.error: pass"
}

member_export_check() {
  agent_once dovecot-members
  member_export alice "$T/export"
  assert_has "$T/export" "$ALICE_TEXT"      # plaintext: readable without the server's keys
  assert_has "$T/export" "$ALICE_TEXT2"
  assert_lacks "$T/export" "$BOB_TEXT"
  find "$T/export" -type d -name '.Projects' | grep -q .     # her second folder, as a maildir folder
}

step setup setup
step "create data (2 users, 2 folders each)" create_data
step backup backup
step "destroy server" destroy
step restore restore
step "users see their mail over IMAP" check_users
step "member export (alice only)" member_export_check
finish
