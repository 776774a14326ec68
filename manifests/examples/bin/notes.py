"""The notes service of the SMF XML demo: a tiny HTTP JSON endpoint that echoes its configuration.

Everything it shows arrives from the XML manifest: the port, greeting and tags through
method tokens (``%{notes/port}`` ...), the title through ``<method_environment>``, and
SMF's own ``SMF_FMRI`` / ``SMF_METHOD`` / ``SMF_RESTARTER`` from the restarter.
"""

import argparse
import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    info: dict[str, object] = {}

    def do_GET(self) -> None:
        body = (json.dumps(self.info, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print("notes:", fmt % args, flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=17090)
    p.add_argument("--greeting", default="hello")
    p.add_argument("--tags", default="")
    p.add_argument("--method", default="")
    p.add_argument("--fmri", default="")
    a = p.parse_args()
    Handler.info = {
        "title": os.environ.get("NOTES_TITLE", ""),
        "greeting": a.greeting,
        "tags": a.tags.split(),
        "method_token": a.method,
        "fmri_token": a.fmri,
        "env": {k: v for k, v in os.environ.items() if k.startswith("SMF_")},
        "cwd": os.getcwd(),
    }
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"notes listening on 127.0.0.1:{a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
