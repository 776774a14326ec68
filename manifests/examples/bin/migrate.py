"""The migration step: writes the schema version into the database, then exits."""

import argparse
import socket
import sys


def call(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=17432)
    p.add_argument("--version", default="3")
    a = p.parse_args()
    try:
        before = call(a.port, "GET schema") or "none"
        call(a.port, f"SET schema {a.version}")
    except OSError as e:
        print(f"migrate: cannot reach the database: {e}", flush=True)
        return 1
    print(f"migrate: schema {before} -> {a.version}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
