#!/usr/bin/env bash
# Redmine recipe, for real: Debian's Redmine on SQLite, run as its own instance in a temp dir
# (REDMINE_INSTANCE; nothing under /usr/share/redmine, /etc/redmine or /var/lib/redmine is
# changed); alice and bob open issues with attachments and comment through the REST API;
# `coop agent --once redmine`; instance wiped; restored as docs/recipes/redmine.md says; both log
# in (HTTP basic auth with their passwords) and see their issues, comments and attachments; then
# alice's member job (issues, comments, attachments by author) and her export.
SERVICE=redmine
source "$(dirname "$0")/lib.sh"

I="$T/redmine"          # the instance: config/, files/, db/, log/, tmp/
A_SUBJECT="alice-issue-$RANDOM-ruff"
A_FILE="alice-attachment-$RANDOM-$RANDOM"
A_NOTE="alice-comment-$RANDOM-stint"
B_SUBJECT="bob-issue-$RANDOM-snipe"
B_FILE="bob-attachment-$RANDOM-$RANDOM"
B_NOTE="bob-comment-$RANDOM-knot"

# Debian's Redmine, pointed at our instance. REDMINE_INSTANCE is a path below
# /usr/share/redmine/instances (a symlink to /var/lib/redmine): climb out of it to $I.
export RAILS_ENV=production
export REDMINE_INSTANCE="../../../../..$I"
export BUNDLE_GEMFILE="$T/Gemfile"     # Debian's Gemfile plus webrick; its lock file stays in $T
export SCHEMA="$T/schema.rb"           # where db:migrate dumps the schema (not /usr/share/redmine/db)
rails() { (cd /usr/share/redmine && bin/rails "$@"); }

start() {
  spawn REDMINE_PID sh -c 'cd /usr/share/redmine && exec bin/rails server -b 127.0.0.1 -p "$1" -u webrick -P "$2"' \
    sh "$HTTP_PORT" "$I/tmp/server.pid"
  wait_http "http://127.0.0.1:$HTTP_PORT/" 60
}
stop() { kill_wait "$REDMINE_PID"; }

setup() {
  need_apt redmine redmine-sqlite sqlite3 curl
  save HTTP_PORT "$(free_port)"
  coop_setup
  printf 'eval_gemfile "/usr/share/redmine/Gemfile"\ngem "webrick"\n' > "$T/Gemfile"
  mkdir -p "$I/config" "$I/files" "$I/db" "$I/log" "$I/tmp"
  printf 'production:\n  adapter: sqlite3\n  database: %s\n  encoding: utf8\n' "$I/db/redmine.sqlite3" > "$I/config/database.yml"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$I/config/secret_key.txt"
  rails db:migrate > /dev/null
  REDMINE_LANG=en rails redmine:load_default_data
  rails runner '
    Setting.rest_api_enabled = "1"
    role = Role.find_by!(name: "Developer")
    p = Project.create!(name: "Coop", identifier: "coop", is_public: false)
    p.enabled_module_names = ["issue_tracking"]; p.trackers = Tracker.all; p.save!
    %w[alice bob].each do |l|
      u = User.new(firstname: l.capitalize, lastname: "Test", mail: "#{l}@coop.test"); u.login = l
      u.password = u.password_confirmation = "#{l}-password"; u.status = User::STATUS_ACTIVE; u.save!
      Member.create!(user: u, project: p, roles: [role])
    end'
  # `rails server` creates tmp/{cache,pids,sockets} in the application directory: put that back
  [ -e /usr/share/redmine/tmp ] || defer "rm -rf /usr/share/redmine/tmp"
  start
}

# rest USER METHOD PATH [JSON]: as USER, with HTTP basic auth and their password.
rest() {
  curl -sS -f -u "$1:$1-password" -X "$2" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$HTTP_PORT$3" ${4:+-d "$4"}
}
upload() { # upload USER CONTENT -> token
  printf '%s' "$2" | curl -sS -f -u "$1:$1-password" -X POST -H 'Content-Type: application/octet-stream' \
    --data-binary @- "http://127.0.0.1:$HTTP_PORT/uploads.json?filename=$1.txt" | jq -er .upload.token
}
new_issue() { # new_issue USER SUBJECT FILE_CONTENT -> issue id
  local tok
  tok=$(upload "$1" "$3")
  rest "$1" POST /issues.json '{"issue":{"project_id":"coop","subject":"'"$2"'","description":"about '"$2"'",
    "uploads":[{"token":"'"$tok"'","filename":"'"$1"'.txt","content_type":"text/plain"}]}}' | jq -er .issue.id
}

create_data() {
  local ia ib
  ia=$(new_issue alice "$A_SUBJECT" "$A_FILE")
  ib=$(new_issue bob "$B_SUBJECT" "$B_FILE")
  rest alice PUT "/issues/$ia.json" '{"issue":{"notes":"'"$A_NOTE"'"}}'
  rest bob PUT "/issues/$ia.json" '{"issue":{"notes":"'"$B_NOTE"'"}}'     # bob's comment on alice's issue
  save ISSUE_A "$ia"; save ISSUE_B "$ib"
  find "$I/files" -type f
}

backup() {
  write_agent_config redmine --set DB_FILE="$I/db/redmine.sqlite3" --set CONFIG_DIR="$I/config" --set FILES_DIR="$I/files"
  agent_once redmine
  "$COOP" ls --repo "$REPO" --identity-file "$ADMIN_ID" "$(job_snapshot redmine)"
}

destroy() { stop; rm -rf "$I"; }

# docs/recipes/redmine.md, "Restore".
restore() {
  local snap
  snap=$(job_snapshot redmine)
  c_restore "$snap:$I/config" --target "$I/config"
  c_restore "$snap:$I/files" --target "$I/files"
  c_restore "$snap:/redmine-db" --target "$T/redmine-db"
  mkdir -p "$I/db" "$I/log" "$I/tmp"
  install -m 0640 "$T/redmine-db/redmine.sqlite3" "$I/db/redmine.sqlite3"
  sqlite3 "$I/db/redmine.sqlite3" 'PRAGMA integrity_check' | grep -qx ok
  rails db:migrate > /dev/null
  start
}

attachment_of() { # attachment_of USER ISSUE -> the content of its first attachment
  local url
  url=$(rest "$1" GET "/issues/$2.json?include=attachments" | jq -er '.issue.attachments[0].content_url')
  curl -sS -f -u "$1:$1-password" "$url"
}
check_users() {
  rest alice GET "/issues.json?project_id=coop&status_id=*" | jq -r '.issues[].subject' | grep -qx "$A_SUBJECT"
  rest bob GET "/issues.json?project_id=coop&status_id=*" | jq -r '.issues[].subject' | grep -qx "$B_SUBJECT"
  rest alice GET "/issues/$ISSUE_A.json?include=journals" | jq -r '.issue.journals[].notes' | grep -qx "$B_NOTE"
  [ "$(attachment_of alice "$ISSUE_A")" = "$A_FILE" ]
  [ "$(attachment_of bob "$ISSUE_B")" = "$B_FILE" ]
  if curl -s -f -u alice:wrong "http://127.0.0.1:$HTTP_PORT/users/current.json" > /dev/null; then
    die "a wrong password was accepted"
  fi
}

member_export_check() {
  agent_once redmine-members
  member_export alice "$T/export"
  assert_has "$T/export" "$A_SUBJECT"
  assert_has "$T/export" "$A_NOTE"
  assert_has "$T/export" "$A_FILE"        # the attachment file itself
  assert_has "$T/export" alice@coop.test
  assert_lacks "$T/export" "$B_SUBJECT"
  assert_lacks "$T/export" "$B_NOTE"
  assert_lacks "$T/export" "$B_FILE"
  assert_lacks "$T/export" hashed_password
}

step setup setup
step "create data (2 users, issues, attachments, comments)" create_data
step backup backup
step "destroy instance" destroy
step restore restore
step "users see issues, comments, attachments" check_users
step "member export (alice only)" member_export_check
finish
