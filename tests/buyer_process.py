"""One buyer process for the multi-process order race: N concurrent POSTs at a shared start time.

    python -m tests.buyer_process BASE_URL START_TIME BODY_JSON TOKEN [TOKEN ...]

Prints one JSON list of the HTTP statuses it got. Loopback only, bounded by a timeout per request.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request


def buy(base_url: str, body: bytes, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - a loopback test server
        f"{base_url}/api/v1/orders",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def main() -> None:
    base_url, start, body, *tokens = sys.argv[1:]
    statuses: list[int] = []
    lock = threading.Lock()

    def run(token: str) -> None:
        time.sleep(max(0.0, float(start) - time.time()))
        status = buy(base_url, body.encode(), token)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=run, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    print(json.dumps(statuses))


if __name__ == "__main__":
    main()
