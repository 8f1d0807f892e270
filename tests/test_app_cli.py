"""``granseg serve`` as a command: flags, bad input, the bind warning, and autosave surviving a killed server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the [app] extra (fastapi, uvicorn) is not installed")

from app_helpers import call  # noqa: E402

from granseg.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_serve_is_listed_and_bad_folder_is_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--images" in capsys.readouterr().out
    assert main(["serve", "--images", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --images") and err.count("\n") == 1


def test_binding_another_host_warns(monkeypatch, capsys, tmp_path):
    import uvicorn

    import granseg.app

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(granseg.app, "create_app", lambda config: seen.update(config=config))
    assert (
        main(["serve", "--model", "hierarchy", "--host", "0.0.0.0", "--workdir", str(tmp_path), "--quiet"])
        == 0
    )
    assert seen["host"] == "0.0.0.0"
    assert "warning: binding 0.0.0.0" in capsys.readouterr().err
    assert main(["serve", "--model", "hierarchy", "--workdir", str(tmp_path), "--quiet"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765 and seen["config"].model == "hierarchy"
    assert "warning" not in capsys.readouterr().err and seen["config"].threads == 0
    assert (
        main(["serve", "--model", "hierarchy", "--workdir", str(tmp_path), "--quiet", "--threads", "1"]) == 0
    )
    assert seen["config"].threads == 1
    assert main(["serve", "--workdir", str(tmp_path), "--threads", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(workdir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "granseg", "serve", "--model", "hierarchy", "--quiet"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workdir", str(workdir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
        try:
            if call(f"http://127.0.0.1:{port}", "GET", "/api/info", timeout=2)[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("granseg serve did not start")


@pytest.mark.slow
def test_committed_objects_survive_a_killed_server(tmp_path, sample_image_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start(tmp_path, port)
    try:
        _, meta, _ = call(base, "POST", "/api/upload?name=coffee.jpg", raw=sample_image_path.read_bytes())
        body = {"points": [[330, 60]], "labels": [1], "granularity": 1.0, "name": "cup"}
        status, cup, _ = call(base, "POST", f"/api/images/{meta['id']}/objects", body)
        assert status == 200
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    process = _start(tmp_path, port)
    try:
        recent = call(base, "GET", "/api/recent")[1]
        assert [(m["id"], m["objects"]) for m in recent] == [(meta["id"], 1)]
        objects = call(base, "GET", f"/api/images/{meta['id']}/objects")[1]
        assert objects == [cup]
        # the image itself is back too: prompts work after the restart
        status, out, _ = call(base, "POST", f"/api/images/{meta['id']}/predict", {"points": [[330, 60]]})
        assert status == 200 and out["area"] == cup["area"]
        leftovers = [p.name for p in (tmp_path / "images" / meta["id"]).iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_browser_tests_say_why_they_skip_without_chromium(monkeypatch):
    import shutil

    from granseg.app import harness

    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = harness.browser_missing_reason()
    assert reason is not None and "chromium is not installed" in reason and "apt-get install" in reason
