"""The web front: an HTTP server that renders a page from the application's API."""

import argparse
import http.server
import json
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    app = "http://127.0.0.1:17080"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        try:
            with urllib.request.urlopen(self.app + "/", timeout=2) as r:
                info = json.load(r)
            page = f"<html><body><h1>svcmgr demo</h1><p>schema {info.get('schema')}</p></body></html>\n"
            self._send(200, page.encode(), "text/html")
        except OSError as e:
            self._send(502, f"app unavailable: {e}\n".encode(), "text/plain")

    def _send(self, code: int, data: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        print("web:", fmt % args, flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=17081)
    p.add_argument("--app", default="http://127.0.0.1:17080")
    a = p.parse_args()
    Handler.app = a.app
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"web listening on 127.0.0.1:{a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
