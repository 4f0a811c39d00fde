#!/usr/bin/env python3
"""A hostile storage site for the tests: an HTTP proxy in front of a real S3 server.

    hostile_proxy.py UPSTREAM_URL MODE_FILE

Prints the port it listens on (127.0.0.1) as its first line of output. Every request is
forwarded to UPSTREAM_URL (path-style S3). MODE_FILE holds a JSON object, read again for every
request, so a test switches attacks by rewriting it; a missing or empty file means honest:

    hide          list of regexes: listing entries whose key matches are left out
    deny          list of regexes: GET/HEAD of a matching key answers 404 NoSuchKey
    truncate      {"prefix": REGEX, "keep": N}: a listing whose prefix matches returns only its
                  first N entries and claims to be complete
    swap          {"bucket/keyA": "bucket/keyB"}: GET/HEAD of keyA serves keyB's bytes
    bucket_map    {"bucket": "other-bucket"}: every request to bucket goes to other-bucket
                  (the site serves an older copy of the store)

Standard library only.
"""
import http.client
import http.server
import json
import re
import socketserver
import sys
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
MODE_FILE = sys.argv[2]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "host", "content-length"}


def mode():
    try:
        with open(MODE_FILE) as f:
            text = f.read().strip()
        return json.loads(text) if text else {}
    except FileNotFoundError:
        return {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        m = mode()
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path).lstrip("/")
        bucket, _, key = path.partition("/")
        bucket = m.get("bucket_map", {}).get(bucket, bucket)
        query = urllib.parse.parse_qs(url.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        is_read = self.command in ("GET", "HEAD") and key
        if is_read and any(re.search(r, key) for r in m.get("deny", [])):
            return self.reply(404, {"Content-Type": "application/xml"},
                              b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code>"
                              b"<Message>The specified key does not exist.</Message></Error>",
                              head=self.command == "HEAD")
        if is_read:
            swapped = m.get("swap", {}).get(f"{bucket}/{key}")
            if swapped:
                bucket, _, key = swapped.partition("/")
        target = "/" + urllib.parse.quote(bucket + ("/" + key if key else ""), safe="/")
        if url.query:
            target += "?" + url.query
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Host"] = UPSTREAM.netloc
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        conn.request(self.command, target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP}
        conn.close()
        listing = self.command == "GET" and not key and "list-type" in query
        if listing and resp.status == 200:
            data = self.lie(data, m, query.get("prefix", [""])[0])
        self.reply(resp.status, out, data, head=self.command == "HEAD",
                   length=resp.getheader("Content-Length"))

    def lie(self, data, m, prefix):
        text = data.decode()
        entries = re.findall(r"<Contents>.*?</Contents>", text, re.S)
        keep = []
        for e in entries:
            k = re.search(r"<Key>(.*?)</Key>", e, re.S).group(1)
            if any(re.search(r, k) for r in m.get("hide", [])):
                continue
            keep.append(e)
        t = m.get("truncate")
        if t and re.search(t["prefix"], prefix):
            keep = keep[: t["keep"]]
            text = re.sub(r"<IsTruncated>true</IsTruncated>", "<IsTruncated>false</IsTruncated>", text)
            text = re.sub(r"<NextContinuationToken>.*?</NextContinuationToken>", "", text, flags=re.S)
        if len(keep) == len(entries) and not t:
            return data
        first = text.find("<Contents>")
        if first < 0:
            return data
        last = text.rfind("</Contents>") + len("</Contents>")
        text = text[:first] + "".join(keep) + text[last:]
        text = re.sub(r"<KeyCount>\d+</KeyCount>", f"<KeyCount>{len(keep)}</KeyCount>", text)
        return text.encode()

    def reply(self, status, headers, data, head=False, length=None):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", length if head and length else str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
