"""The application: an HTTP API that needs the database (and a migrated schema)."""

import argparse
import http.server
import json
import socket


class Handler(http.server.BaseHTTPRequestHandler):
    db_port = 17432

    def do_GET(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.db_port), timeout=2) as s:
                s.sendall(b"GET schema\nSET last_request " + self.path.encode() + b"\n")
                f = s.makefile()
                schema = f.readline().strip()
                f.readline()
            body, code = {"status": "ok", "schema": schema, "path": self.path}, 200
        except OSError as e:
            body, code = {"status": "error", "error": str(e)}, 503
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        print("app:", fmt % args, flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=17080)
    p.add_argument("--db-port", type=int, default=17432)
    a = p.parse_args()
    Handler.db_port = a.db_port
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"app listening on 127.0.0.1:{a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
