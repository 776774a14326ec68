"""A database stand-in: a tiny key-value store on a TCP port (one line per command).

Commands: PING, GET key, SET key value, KEYS. Replies end with a newline.
"""

import argparse
import socketserver
import sys
import threading

store: dict[str, str] = {}
lock = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            words = raw.decode(errors="replace").strip().split(" ", 2)
            cmd = words[0].upper()
            with lock:
                if cmd == "PING":
                    out = "PONG"
                elif cmd == "GET" and len(words) == 2:
                    out = store.get(words[1], "")
                elif cmd == "SET" and len(words) == 3:
                    store[words[1]] = words[2]
                    out = "OK"
                elif cmd == "KEYS":
                    out = " ".join(sorted(store))
                else:
                    out = "ERR unknown command"
            self.wfile.write((out + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=17432)
    a = p.parse_args()
    with Server(("127.0.0.1", a.port), Handler) as srv:
        print(f"kvdb listening on 127.0.0.1:{a.port}", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
