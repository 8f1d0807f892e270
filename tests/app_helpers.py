"""Helpers for the app tests: a tiny JSON/bytes HTTP client over urllib (loopback only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(base: str, method: str, path: str, body: Any = None, raw: bytes | None = None, timeout: float = 60):
    """``(status, parsed JSON or bytes, headers)`` for one request; HTTP errors are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header(
            "Content-Type", "application/octet-stream" if raw is not None else "application/json"
        )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, payload, headers = exc.code, exc.read(), exc.headers
    if "json" in (headers.get("content-type") or ""):
        payload = json.loads(payload)
    return status, payload, headers
