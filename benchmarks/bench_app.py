"""Latency and load of ``granseg serve``, measured in a real browser (headless Chromium, Selenium, loopback).

Per model (``hierarchy`` and the tiny random neural ``unsamv2-tiny-random``, with torch's default threads and with
one thread: ``NAME@1``):

* time to first mask: from the start of the upload in the page to the first mask drawn (upload + decode +
  embedding + the first click's round trip), on the bundled 600 x 400 photo;
* click-to-mask: a real mouse click on the canvas to the mask drawn (the request asks for g and the ten
  thumbnails); timed in the page from the mouseup handler to the end of drawing;
* slider-to-mask: one slider step (an ``input`` event) to the mask drawn, one step at a time;
* a slider drag: 40 ``input`` events 16 ms apart (a 60 Hz drag); the page keeps one request in flight and the
  latest queued, so it reports how many requests were sent and the delay from the last event to its mask.

Load: a ``granseg serve`` subprocess (hierarchy, default ``--max-pending 16``) gets bursts of 200 concurrent
predict requests on loopback; counts of 200 / 503 / errors, burst wall time, and the server's RSS sampled every
10 ms (peak, and after each burst).

Writes ``benchmarks/results/app.md``. Run: ``.venv/bin/python benchmarks/bench_app.py [--clicks 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from granseg.app import AppConfig  # noqa: E402
from granseg.app.harness import ServerThread, chrome_driver, click_image, wait_for  # noqa: E402

SAMPLE = REPO / "granseg" / "assets" / "coffee.jpg"


def stats(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"{statistics.median(values):.1f} / {p90:.1f} / {max(values):.1f}"


# Waits inside the page (a 1 ms timer), so that no WebDriver polling competes with the app for the 2 cores.
WAIT_JS = """
const seq = arguments[0], done = arguments[arguments.length - 1];
const poll = () => {
  const d = document.body.dataset;
  if (Number(d.maskSeq) > seq && !window.granseg.inflight && !window.granseg.queued)
    done(Object.assign({}, d));
  else setTimeout(poll, 1);
};
poll();
"""
SLIDER_JS = """
const value = arguments[0], done = arguments[arguments.length - 1];
const seq = window.granseg.seq, s = document.getElementById('g-slider');
s.value = String(value); s.dispatchEvent(new Event('input'));
const poll = () => {
  const d = document.body.dataset;
  if (Number(d.maskSeq) > seq && !window.granseg.inflight && !window.granseg.queued) done(Object.assign({}, d));
  else setTimeout(poll, 1);
};
poll();
"""


def wait_shown(driver, seq: int) -> dict:
    driver.set_script_timeout(120)
    return driver.execute_async_script(WAIT_JS, seq)


def browser_latency(spec: str, clicks: int, workdir: Path) -> dict:
    """``spec``: a model name, optionally ``@N`` for N torch threads (``AppConfig.threads``)."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    rng = np.random.default_rng(0)
    points = [(int(x), int(y)) for x, y in zip(rng.integers(150, 450, clicks), rng.integers(40, 360, clicks))]
    model, _, threads = spec.partition("@")
    out: dict = {"model": model, "threads": int(threads or 0)}
    driver = chrome_driver()
    config = AppConfig(model=model, workdir=str(workdir / spec), threads=int(threads or 0))
    try:
        with ServerThread(config) as server:
            driver.get(server.url)
            wait_for(driver, "return document.body.dataset.ready")
            driver.find_element(By.ID, "file-input").send_keys(str(SAMPLE))
            wait_for(
                driver, "return document.body.dataset.imageId && document.body.dataset.busy === '0'", 120
            )
            click_image(driver, 330, 60)
            wait_shown(driver, 0)
            out["first_mask_ms"] = driver.execute_script("return window.granseg.uploadToFirstMaskMs")
            out["upload_to_ready_ms"] = driver.execute_script(
                "return window.granseg.readyAt - window.granseg.openedAt"
            )
            body = driver.find_element(By.TAG_NAME, "body")
            click_ms = []
            for x, y in points:
                body.send_keys(Keys.ESCAPE)  # clear: every click starts a new object
                seq = int(driver.execute_script("return window.granseg.seq"))
                click_image(driver, x, y)
                shown = wait_shown(driver, seq)
                click_ms.append(float(shown["lastRoundTripMs"]))
            out["click_ms"] = click_ms
            click_image(driver, 330, 60)
            wait_shown(driver, int(driver.execute_script("return window.granseg.seq")) - 1)
            slider_ms = []
            steps = [round(0.1 + 0.9 * ((7 * k) % 31) / 30, 2) for k in range(clicks)]
            for value in steps:
                shown = driver.execute_async_script(SLIDER_JS, value)
                slider_ms.append(float(shown["lastRoundTripMs"]))
            out["slider_ms"] = slider_ms
            out["drag"] = slider_drag(driver)
    finally:
        driver.quit()
    return out


def slider_drag(driver) -> dict:
    """40 input events 16 ms apart; the latest one's mask must be the one shown."""
    sent_before = driver.execute_script("return window.granseg.sent")
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const s = document.getElementById('g-slider');
        let k = 0;
        const timer = setInterval(() => {
          s.value = String(1.0 - 0.02 * k); s.dispatchEvent(new Event('input')); k++;
          if (k === 40) {
            clearInterval(timer);
            const last = performance.now(), want = Number(s.value);
            const poll = setInterval(() => {
              const g = Number(document.body.dataset.maskG);
              if (!window.granseg.inflight && !window.granseg.queued && Math.abs(g - want) < 1e-6) {
                clearInterval(poll); done({lastToShownMs: performance.now() - last, g: g});
              }
            }, 2);
          }
        }, 16);
        """
    )
    result["requests_sent"] = driver.execute_script("return window.granseg.sent") - sent_before
    result["events"] = 40
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code
    except OSError as exc:
        return f"error {type(exc).__name__}"


def load_test(workdir: Path, bursts: int, count: int) -> dict:
    import psutil

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "granseg",
        "serve",
        "--model",
        "hierarchy",
        "--quiet",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        [*command, "--workdir", str(workdir / "load")], env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/api/info", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(
            base + "/api/upload?name=c.jpg", data=SAMPLE.read_bytes(), method="POST"
        )
        image_id = json.loads(urllib.request.urlopen(request).read())["id"]
        post(f"{base}/api/images/{image_id}/embed", {})
        process = psutil.Process(server.pid)
        rss_start = process.memory_info().rss
        rows = []
        for _ in range(bursts):
            peak, stop = [process.memory_info().rss], threading.Event()

            def sample(peak=peak, stop=stop) -> None:
                while not stop.is_set():
                    peak.append(process.memory_info().rss)
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            statuses: Counter = Counter()
            barrier = threading.Barrier(count)

            def one(i: int, barrier=barrier, statuses=statuses) -> None:
                body = {"points": [[100 + i % 300, 100 + i % 200]], "granularity": 0.1 + (i % 10) / 10}
                barrier.wait()
                statuses[post(f"{base}/api/images/{image_id}/predict", body)] += 1

            start = time.perf_counter()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            stop.set()
            sampler.join()
            rows.append(
                {
                    "served": statuses.get(200, 0),
                    "rejected_503": statuses.get(503, 0),
                    "rejected_429": statuses.get(429, 0),
                    "other": sum(v for k, v in statuses.items() if k not in (200, 503, 429)),
                    "wall_s": round(wall, 2),
                    "peak_rss_mb": round(max(peak) / 2**20, 1),
                    "rss_after_mb": round(process.memory_info().rss / 2**20, 1),
                }
            )
        alive = post(f"{base}/api/images/{image_id}/predict", {"points": [[330, 60]]}) == 200
        return {"rss_start_mb": round(rss_start / 2**20, 1), "bursts": rows, "alive_after": alive}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} logical CPUs ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
        f"{subprocess.run(['chromium', '--version'], capture_output=True, text=True).stdout.strip()}; "
        f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )


def report(results: list[dict], load: dict, args: argparse.Namespace) -> str:
    lines = [
        "# granseg serve: latency in the browser and load",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}. The machine was SHARED "
        "(2 cores, other engineers' jobs running): wall times are inflated and vary; compare rows of one run.",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_app.py', *sys.argv[1:]])}`",
        "",
        "Browser: headless Chromium on loopback, the bundled 600 x 400 photo. Times in ms, median / p90 / max over "
        f"{args.clicks} clicks or slider steps, from the page's event handler to the mask drawn on the canvas.",
        "",
        "| model | torch threads | time to first mask (upload -> mask) | upload -> ready (embedding) | click -> mask (g + 10 thumbnails) | "
        "slider step -> mask | 60 Hz drag: 40 events -> requests sent, last event -> its mask |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        drag = r["drag"]
        lines.append(
            f"| `{r['model']}` | {r['threads'] or 'default'} | {r['first_mask_ms']:.0f} | {r['upload_to_ready_ms']:.0f} | {stats(r['click_ms'])} | "
            f"{stats(r['slider_ms'])} | {drag['requests_sent']} sent, {drag['lastToShownMs']:.0f} ms |"
        )
    lines += [
        "",
        f"Load: `granseg serve --model hierarchy` (subprocess, --max-pending 16), {args.bursts} bursts of "
        f"{args.requests} concurrent predict requests on loopback. Server RSS at start {load['rss_start_mb']} MB; "
        f"server still answering afterwards: {load['alive_after']}.",
        "",
        "| burst | served (200) | rejected 503 | rejected 429 | other / errors | wall s | peak RSS MB | RSS after MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, b in enumerate(load["bursts"], 1):
        lines.append(
            f"| {i} | {b['served']} | {b['rejected_503']} | {b['rejected_429']} | {b['other']} | {b['wall_s']} | "
            f"{b['peak_rss_mb']} | {b['rss_after_mb']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument(
        "--models",
        default="hierarchy,unsamv2-tiny-random,unsamv2-tiny-random@1",
        help="comma-separated; NAME@N runs the model with N torch threads",
    )
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "app.md")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = [browser_latency(m, args.clicks, Path(tmp)) for m in args.models.split(",")]
        load = load_test(Path(tmp), args.bursts, args.requests)
    text = report(results, load, args)
    from granseg.io.files import atomic_write_text

    atomic_write_text(args.out, text)
    print(text)
    print(json.dumps({"results": results, "load": load}, default=str)[:4000], file=sys.stderr)


if __name__ == "__main__":
    main()
