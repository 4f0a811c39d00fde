#!/usr/bin/env bash
# The transparency report's page in a real browser: Chromium from Debian's packages, headless,
# with every network path closed. It builds a small repository (two members, two sites, three
# days of simulated job history), writes the page with `coop report --html`, checks that the
# file refers to nothing outside itself (no script, no URL), renders it behind a proxy that
# goes nowhere, checks the browser's network log for any request but the page itself, keeps
# screenshots (target/report-screenshot.png at a desktop width, target/report-screenshot-phone.png
# at a phone's; target/report.json is the same report as JSON), and checks that the rendered
# text names every member and site.
#
# Chromium is installed with apt-get when missing, as root only; otherwise the test is skipped
# with a note. scripts/test.sh runs it (COOP_TEST_BROWSER=0 skips it there).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

fail() { echo "report_browser.sh: FAILED: $*" >&2; exit 1; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }
chromium=$(find_chromium)
if [ -z "$chromium" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "report_browser.sh: skipped: Chromium is not installed, and installing it needs root (apt-get install chromium)"
    exit 0
  fi
  echo "== installing chromium from Debian's packages"
  (cd / && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null
  chromium=$(find_chromium)
  [ -n "$chromium" ] || fail "chromium did not install"
fi

cargo build --quiet -p coop-cli
coop="$PWD/$target/debug/coop"
work="$(mktemp -d /tmp/coop-report-browser.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Only what this test sets.
for v in $(env | sed -n 's/^\(COOP_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" COOP_REPO="$work/repo"
mkdir -p "$HOME" "$work/services" "$work/data/alice/files" "$work/data/bob/files"

"$coop" -q init >/dev/null 2>&1 || fail "coop init"
ssh-keygen -q -t ed25519 -N "" -C alice@laptop -f "$work/alice"
ssh-keygen -q -t ed25519 -N "" -C bob@phone -f "$work/bob"
"$coop" -q member add alice --recipient "$(cat "$work/alice.pub")" --quota 5GB >/dev/null
"$coop" -q member add bob --recipient "$(cat "$work/bob.pub")" >/dev/null
cat > "$work/agent.toml" <<EOF
[site]
name = "hackspace"
repo = "$work/repo"
identity_file = "$work/config/coop/identity.txt"
cache_dir = "$work/agent-cache"

[[peer]]
name = "rented-vm"
repo = "$work/replica"

[[job]]
name = "services"
schedule = "0 3 * * *"
paths = ["$work/services"]

[[job]]
name = "members"
schedule = "30 3 * * *"
members = "all"
paths = ["$work/data/{member}/files"]

[cooperative]
name = "Hackspace Süd <Kollektiv> eG"
legal_form = "eingetragene Genossenschaft"
language = "de"
currency = "EUR"
balance = 2400
balance_date = "2026-03-31"
fixed_share_percent = 20

[[cooperative.site]]
name = "hackspace"
provider = "Hackspace Leipzig e.V., eigene Hardware"
location = "Leipzig, DE"
energy_source = "Polarstern (Wasserkraft)"
renewable = true
cpu_watts = 12
costs = { hardware = 8.50, strom = 6.20 }

[[cooperative.site]]
name = "rented-vm"
provider = "Hetzner Online GmbH"
location = "Falkenstein, DE"
energy_source = "Hetzner (Wasser und Wind)"
renewable = true
costs = { hosting = 4.51, domain = 1.00 }
EOF
now=$(date +%s)
for d in 2 1 0; do
  head -c $((60000 + d * 1000)) /dev/urandom > "$work/services/dump-$d.sql"
  head -c $((150000 + d * 7000)) /dev/urandom > "$work/data/alice/files/photo-$d.jpg"
  head -c 20000 /dev/urandom > "$work/data/bob/files/note-$d.md"
  for job in services members; do
    COOP_TEST_NOW=$((now - d * 86400 - 3600)) "$coop" -q agent --config "$work/agent.toml" --once "$job" >/dev/null \
      || fail "agent --once $job"
  done
done
"$coop" -q export --member alice --out "$work/alice.tar" --reason member-request >/dev/null
"$coop" report --config "$work/agent.toml" --html "$work/page" 2>/dev/null || fail "coop report --html"
# The JSON of the same repository, kept beside the screenshots.
mkdir -p "$target"
"$coop" report --config "$work/agent.toml" --json > "$target/report.json" 2>/dev/null || fail "coop report --json"
page="$work/page/index.html"
[ -s "$page" ] || fail "no page written"

# 1. The file refers to nothing outside itself: no script, stylesheet, image, frame or font
#    to fetch, no URL, and every link is an anchor in the page. (A protocol-relative URL is
#    looked for in attribute values: base64 text on the page, such as an SSH key's
#    fingerprint, may hold "//" followed by a letter.)
if grep -Eion '<script|<link|<img|<iframe|<object|<embed|<video|<audio|src=|srcset=|url\(|@import|https?:|=[[:space:]]*["'"'"']?//' "$page"; then
  fail "the page refers to something outside itself (above)"
fi
if grep -o 'href="[^"]*"' "$page" | grep -v '^href="#'; then
  fail "a link leaves the page (above)"
fi

# 2. Render it: every name unresolvable, every request sent to a closed port (the page has no
#    script: step 1).
flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
  --no-default-browser-check --disable-background-networking --disable-component-update
  --disable-sync --disable-extensions --disable-default-apps
  --user-data-dir="$work/profile" --proxy-server=127.0.0.1:9 --proxy-bypass-list='<-loopback>'
  --host-resolver-rules='MAP * ~NOTFOUND')
url="file://$page"
mkdir -p "$target"
rm -f "$target/report-screenshot.png" "$target/report-screenshot-phone.png"
"$chromium" "${flags[@]}" --log-net-log="$work/net.json" --window-size=1200,5600 \
  --screenshot="$PWD/$target/report-screenshot.png" "$url" >"$work/chromium.log" 2>&1 \
  || { cat "$work/chromium.log"; fail "chromium could not take the screenshot"; }
"$chromium" "${flags[@]}" --window-size=412,9800 \
  --screenshot="$PWD/$target/report-screenshot-phone.png" "$url" >>"$work/chromium.log" 2>&1 \
  || { cat "$work/chromium.log"; fail "chromium could not take the phone screenshot"; }
"$chromium" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>>"$work/chromium.log" \
  || { cat "$work/chromium.log"; fail "chromium could not dump the DOM"; }
# The control: a page with one outside image, whose request the same check must see.
printf '<!DOCTYPE html><title>x</title><img src="http://example.org/x.png" alt="">' >"$work/control.html"
"$chromium" "${flags[@]}" --log-net-log="$work/control.json" --screenshot="$work/control.png" \
  "file://$work/control.html" >>"$work/chromium.log" 2>&1 || fail "chromium could not load the control page"

# 3. The page made no request (the browser's own background requests, which the closed
#    proxy stops too, are not the page's: they carry no initiator), the control page's
#    request was seen, the screenshots are images, and the rendered text names each member
#    and site (and the cooperative, escaped correctly).
python3 - "$work/net.json" "$work/control.json" "$work/dom.html" "$target/report-screenshot.png" "$target/report-screenshot-phone.png" <<'PY'
import html.parser, json, struct, sys
net, control, dom, shots = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def page_requests(path):
    """URLs requested on behalf of a page: URL requests with an initiator (the browser's
    own ones have none) or isolated under the file:// site."""
    d = json.load(open(path, encoding="utf-8"))
    types = {v: k for k, v in d["constants"]["logEventTypes"].items()}
    found, background = [], []
    for e in d.get("events", []):
        p = e.get("params") or {}
        if types.get(e["type"]) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        ini = p.get("initiator", "not an origin")
        if ini != "not an origin" or "file://" in p.get("network_isolation_key", ""):
            found.append(p["url"])
        else:
            background.append(p["url"].split("?")[0])
    return found, background

seen, _ = page_requests(control)
if not any("example.org" in u for u in seen):
    sys.exit(f"the network check does not work: the control page's request was not seen ({seen})")
found, background = page_requests(net)
if found:
    sys.exit("the page made requests: " + ", ".join(found))
print(f"network log: the page made no request (the browser's own, refused by the closed proxy: {len(background)})")

class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.parts = []; self.skip = 0
    def handle_starttag(self, tag, a):
        if tag in ("style", "title"): self.skip += 1
    def handle_endtag(self, tag):
        if tag in ("style", "title"): self.skip -= 1
    def handle_data(self, d):
        if not self.skip: self.parts.append(d)
p = Text(); p.feed(open(dom, encoding="utf-8").read())
shown = " ".join(p.parts)
for name in ["alice", "bob", "hackspace", "rented-vm", "Hackspace Süd <Kollektiv> eG", "Transparenzbericht"]:
    if name not in shown:
        sys.exit(f"the rendered page does not show {name!r}")
print("rendered text shows every member and site")
for s in shots:
    head = open(s, "rb").read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{s} is not a PNG")
    w, h = struct.unpack(">II", head[16:24])
    print(f"screenshot {s}: {w}x{h}")
PY
# 4. The published setup (`report --setup`), the same way: nothing outside itself, no request,
#    and the rendered text names every job and site but not the repository's path.
"$coop" report --config "$work/agent.toml" --setup --html "$work/setup" 2>/dev/null || fail "coop report --setup"
setup="$work/setup/index.html"
if grep -Eion '<script|<link|<img|<iframe|<object|<embed|src=|url\(|@import|https?:' "$setup"; then
  fail "the setup page refers to something outside itself (above)"
fi
"$chromium" "${flags[@]}" --log-net-log="$work/setup-net.json" --dump-dom "file://$setup" >"$work/setup-dom.html" 2>>"$work/chromium.log" \
  || { cat "$work/chromium.log"; fail "chromium could not load the setup page"; }
python3 - "$work/setup-net.json" "$work/setup-dom.html" "$work/repo" <<'PY'
import json, sys
net, dom, repo = sys.argv[1:]
d = json.load(open(net, encoding="utf-8"))
types = {v: k for k, v in d["constants"]["logEventTypes"].items()}
for e in d.get("events", []):
    p = e.get("params") or {}
    if types.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in p and p.get("initiator", "not an origin") != "not an origin":
        sys.exit("the setup page made a request: " + p["url"])
text = open(dom, encoding="utf-8").read()
for name in ["services", "members", "hackspace", "rented-vm", "{member}"]:
    if name not in text:
        sys.exit(f"the rendered setup page does not show {name!r}")
for hidden in [repo, "alice", "bob"]:
    if hidden in text:
        sys.exit(f"the rendered setup page shows {hidden!r}")
print("setup page: no request; every job and site shown; no repository path or member name")
PY

echo "report_browser.sh: ok (screenshots in $target/report-screenshot.png and $target/report-screenshot-phone.png)"
