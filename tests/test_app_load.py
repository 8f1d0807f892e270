"""The bounded work queue: 200 concurrent requests on loopback are each answered (200 or 503 + Retry-After),
the server keeps serving, and its memory does not grow with a second burst."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

pytest.importorskip("uvicorn", reason="the [app] extra (fastapi, uvicorn) is not installed")

from app_helpers import call  # noqa: E402

from granseg.app import AppConfig  # noqa: E402
from granseg.app.harness import ServerThread  # noqa: E402


def burst(base: str, image_id: str, count: int) -> Counter:
    statuses: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(count)

    def one(index: int) -> None:
        body = {"points": [[100 + index % 300, 100 + index % 200]], "granularity": 0.1 + (index % 10) / 10}
        start.wait()
        try:
            status, out, headers = call(base, "POST", f"/api/images/{image_id}/predict", body, timeout=120)
            if status == 503:
                assert headers["Retry-After"] == "1" and "busy" in out["detail"]
        except OSError as exc:  # a refused or reset connection would be a failure of the server
            status = f"error {type(exc).__name__}"
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return statuses


def test_200_concurrent_requests_are_served_or_refused_and_memory_stays_flat(tmp_path, sample_image_path):
    import psutil

    process = psutil.Process()
    config = AppConfig(model="hierarchy", workdir=str(tmp_path), max_pending=8)
    with ServerThread(config) as server:
        _, meta, _ = call(server.url, "POST", "/api/upload?name=c.jpg", raw=sample_image_path.read_bytes())
        call(server.url, "POST", f"/api/images/{meta['id']}/embed")
        first = burst(server.url, meta["id"], 200)
        rss_after_first = process.memory_info().rss
        second = burst(server.url, meta["id"], 200)
        rss_after_second = process.memory_info().rss
        assert set(first) | set(second) <= {200, 503}, (first, second)
        assert sum(first.values()) == sum(second.values()) == 200
        assert first[200] >= 8 and first[503] > 0  # the queue admitted its 8 and refused the rest at once
        assert call(server.url, "GET", "/api/info")[1]["queue"]["pending"] == 0
        assert (rss_after_second - rss_after_first) < 100 * 2**20, (rss_after_first, rss_after_second)
