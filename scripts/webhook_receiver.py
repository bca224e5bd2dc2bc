"""A webhook receiver for shop's fault runs (scripts/chaos.py): a process of its own, so it can be paused and killed.

It listens on 127.0.0.1, checks each delivery's signature with shop.webhooks.verify, answers 200 (401 to a bad
signature) and appends one JSON line per verified delivery to a file: the event's id, resource, sequence and the
Shop-Delivery-Id. It stops by itself after --lifetime seconds.

    python scripts/webhook_receiver.py --port 8099 --secrets whsec_... --out received.jsonl
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from shop.webhooks.signing import SignatureError, verify  # noqa: E402


class ReceiverServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the worker opens up to 16 connections at once; the default backlog is 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secrets", required=True, help="the endpoint's signing secrets, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before it stops by itself")
    arguments = parser.parse_args()
    secrets = arguments.secrets.split(",")
    lock = threading.Lock()
    out = arguments.out.open("a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the worker expects of a receiver

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                verify(self.headers.get("Shop-Signature", ""), body, secrets)
            except SignatureError:
                self._answer(401)
                return
            event: dict[str, Any] = json.loads(body)
            line = {
                "id": event["id"],
                "resource": event["resource"],
                "sequence": event["sequence"],
                "delivery": self.headers.get("Shop-Delivery-Id"),
            }
            with lock:
                out.write(json.dumps(line) + "\n")
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ReceiverServer(("127.0.0.1", arguments.port), Handler)
    threading.Timer(arguments.lifetime, server.shutdown).start()
    server.serve_forever()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
