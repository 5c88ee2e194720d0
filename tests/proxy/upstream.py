"""A local upstream for the warden proxy tests (Python standard library only).

Serves HTTP/1.1 with keep-alive, plain or TLS (--cert/--key), and records every request
it receives as one JSON line in --record: method, path, headers, body length and the
SHA-256 of the body, so a test can assert what arrived byte for byte and that a refused
request never did.

Routes:
  /echo...          answers the request body back (Content-Type application/octet-stream)
  /bytes/N          answers N bytes of a fixed pattern
  /files/PATH       a static file under --root (git's "dumb" HTTP protocol uses this)
  /slow/S           answers after S seconds
  anything else     200 "ok <method> <path>"

Prints "listening on PORT" on stderr once ready.
"""

import argparse
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", required=True)
    ap.add_argument("--root", default=".")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    lock = threading.Lock()
    root = os.path.realpath(args.root)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _record(self, body):
            entry = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
            with lock, open(args.record, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def _send(self, status, body, ctype="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _any(self):
            body = self._body()
            self._record(body)
            path = self.path.split("?")[0]
            if path.startswith("/echo"):
                return self._send(200, body, "application/octet-stream")
            if path.startswith("/bytes/"):
                n = int(path[len("/bytes/"):])
                return self._send(200, (b"0123456789abcdef" * (n // 16 + 1))[:n],
                                  "application/octet-stream")
            if path.startswith("/slow/"):
                time.sleep(float(path[len("/slow/"):]))
                return self._send(200, b"slow\n")
            if path.startswith("/files/"):
                full = os.path.realpath(os.path.join(root, path[len("/files/"):]))
                if not full.startswith(root + os.sep) or not os.path.isfile(full):
                    return self._send(404, b"not found\n")
                with open(full, "rb") as f:
                    return self._send(200, f.read(), "application/octet-stream")
            return self._send(200, f"ok {self.command} {self.path}\n".encode())

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening on {server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
