"""A dashboard client process for the tests (not a test module).

usage: _poller.py BASE_URL STOP_FILE OUT_FILE

Requests what the page requests on each load, back-to-back (the next request as
soon as the last one answered), until STOP_FILE exists. Writes ``OUT_FILE.started``
after its first answer, then on stopping OUT_FILE: ``{"requests", "stale",
"errors": [status and message of each failed request], "totals": [[total_tokens,
stale] of each /api/overview answer]}``.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PAGE = ("/api/info", "/api/overview", "/api/health", "/api/sessions?limit=10&offset=0")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=300) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:  # the server is gone (the test failed): say so, slowly
        time.sleep(0.1)
        return 0, str(exc).encode()


def main() -> None:
    base, stop, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    requests = stale = 0
    errors: list[str] = []
    totals: list[list[object]] = []
    while not stop.exists():
        for path in PAGE:
            status, body = get(base + path)
            requests += 1
            if status != 200:
                errors.append(f"{path}: HTTP {status} {body[:300]!r}")
                continue
            doc = json.loads(body)
            if "as_of" not in doc or "stale" not in doc:
                errors.append(f"{path}: no as_of/stale in {sorted(doc)}")
            stale += bool(doc.get("stale"))
            if path == "/api/overview":
                totals.append([doc["totals"]["total_tokens"], bool(doc.get("stale"))])
        started = out.with_name(out.name + ".started")
        if not started.exists():
            started.write_text("started")
    out.write_text(
        json.dumps({"requests": requests, "stale": stale, "errors": errors, "totals": totals})
    )


if __name__ == "__main__":
    main()
