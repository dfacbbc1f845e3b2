#!/usr/bin/env python3
"""A slow HTTP forwarder for berth's resumed-download tests.

Usage: throttle_proxy.py UPSTREAM_HOST:PORT LOG_FILE [--ignore-range]

Listens on 127.0.0.1 (a free port, printed as "listening on HOST:PORT"),
forwards GET and HEAD requests to the plain-HTTP registry UPSTREAM, and
sends response bodies larger than 1 MiB slowly (64 KiB every 20 ms), so
that a test can kill the client in the middle of a blob. Every request is
logged to LOG_FILE as one JSON line: {"method", "path", "range", "status",
"sent"} (bytes of body sent; written when the response ends or breaks).
With --ignore-range the Range header is not forwarded, as by a registry
that does not support it.
"""

import http.client
import http.server
import json
import sys
import threading
import time

UPSTREAM = sys.argv[1]
LOG = sys.argv[2]
IGNORE_RANGE = "--ignore-range" in sys.argv[3:]
SLOW_ABOVE = 1 << 20
CHUNK = 64 << 10
PAUSE = 0.02
log_lock = threading.Lock()


def log(entry):
    with log_lock, open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        rng = self.headers.get("Range")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        if IGNORE_RANGE:
            headers.pop("Range", None)
            headers.pop("range", None)
        up = http.client.HTTPConnection(UPSTREAM, timeout=60)
        up.request(self.command, self.path, headers=headers)
        resp = up.getresponse()
        entry = {"method": self.command, "path": self.path, "range": rng,
                 "status": resp.status, "sent": 0}
        try:
            self.send_response_only(resp.status, resp.reason)
            length = None
            for k, v in resp.getheaders():
                if k.lower() in ("connection", "transfer-encoding", "keep-alive"):
                    continue
                if k.lower() == "content-length":
                    length = int(v)
                self.send_header(k, v)
            body_follows = self.command != "HEAD"
            if length is None and body_follows:
                data = resp.read()
                length = len(data)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(data)
                entry["sent"] = length
                return
            self.end_headers()
            if not body_follows:
                return
            slow = length > SLOW_ABOVE
            while True:
                data = resp.read(CHUNK)
                if not data:
                    break
                self.wfile.write(data)
                self.wfile.flush()
                entry["sent"] += len(data)
                if slow:
                    time.sleep(PAUSE)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            up.close()
            log(entry)

    do_GET = forward
    do_HEAD = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("listening on %s:%d" % server.server_address, flush=True)
server.serve_forever()
