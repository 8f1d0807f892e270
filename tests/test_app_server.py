"""The app's HTTP API on a real server (uvicorn on 127.0.0.1, hierarchy model): limits, folder confinement,
embedding cache, prediction parity with the library, objects with autosave, exports and re-import, whole-image jobs.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [app] extra (fastapi, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the [app] extra (fastapi, uvicorn) is not installed")

from app_helpers import call  # noqa: E402

from granseg.app import AppConfig  # noqa: E402
from granseg.app.harness import ServerThread  # noqa: E402

CUP = [330, 60]


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory, sample_image_path):
    root = tmp_path_factory.mktemp("images")
    (root / "coffee.jpg").write_bytes(sample_image_path.read_bytes())
    (root / "sub").mkdir()
    (root / "sub" / "copy.jpg").write_bytes(sample_image_path.read_bytes() + b"\0")  # other bytes, other id
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.jpg").write_bytes(sample_image_path.read_bytes())
    (root / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (root / "dir_out").symlink_to(outside, target_is_directory=True)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, images_dir):
    workdir = tmp_path_factory.mktemp("workdir")
    config = AppConfig(
        model="hierarchy", workdir=str(workdir), images_dir=str(images_dir), max_upload_bytes=2_000_000
    )
    with ServerThread(config) as running:
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def coffee_id(server, sample_image_path):
    status, meta, _ = call(
        server.url, "POST", "/api/upload?name=coffee.jpg", raw=sample_image_path.read_bytes()
    )
    assert status == 200, meta
    assert (meta["width"], meta["height"]) == (600, 400)
    return meta["id"]


def test_folder_lists_only_images_inside(server):
    status, body, _ = call(server.url, "GET", "/api/folder")
    assert status == 200
    assert body["images"] == ["coffee.jpg", "sub/copy.jpg"]  # symlinks leading out and the .txt are left out


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.jpg",
        "sub/../../secret.jpg",
        "/etc/passwd",
        "link_out.jpg",
        "dir_out/secret.jpg",
        "~/x",
    ],
)
def test_folder_refuses_paths_leading_out(server, path):
    status, body, _ = call(server.url, "POST", "/api/folder/open", {"path": path})
    assert status == 403, body
    assert "outside the image folder" in body["detail"]


def test_folder_opens_an_image_inside(server):
    status, body, _ = call(server.url, "POST", "/api/folder/open", {"path": "sub/copy.jpg"})
    assert status == 200 and body["name"] == "copy.jpg"
    assert call(server.url, "POST", "/api/folder/open", {"path": "missing.jpg"})[0] == 404


def test_image_ids_never_reach_the_file_system(server):
    for bad in ["..%2F..%2Fetc", "0123", "..", "ZZZZZZZZZZZZZZZZ"]:
        assert call(server.url, "GET", f"/api/images/{bad}/display.jpg")[0] == 404


def test_upload_refuses_non_images_too_large_and_too_many_pixels(server, tmp_path):
    status, body, _ = call(server.url, "POST", "/api/upload?name=notes.txt", raw=b"hello, not an image")
    assert status == 415 and "not a supported image" in body["detail"] and "notes.txt" in body["detail"]
    assert _oversized_upload(server, declared=True) == 413  # refused from Content-Length, body never read
    assert (
        _oversized_upload(server, declared=False) == 413
    )  # chunked: refused once the stream passes the limit
    status, body, _ = call(server.url, "POST", "/api/upload?name=empty.png", raw=b"")
    assert status == 415
    import cv2

    ok, png = cv2.imencode(".png", np.zeros((7000, 6000), np.uint8))  # 42 MP > the 40 MP default, tiny file
    status, body, _ = call(server.url, "POST", "/api/upload?name=huge.png", raw=png.tobytes())
    assert status == 415 and "above the limit" in body["detail"], body


def _oversized_upload(server, declared: bool) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        if declared:
            connection.putrequest("POST", "/api/upload?name=big.bin")
            connection.putheader("Content-Length", "2000001")
            connection.endheaders()
        else:
            chunks = (b"\0" * 100_000 for _ in range(21))  # 2.1 MB > the 2 MB limit
            connection.request("POST", "/api/upload?name=big.bin", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert "limit" in json.loads(response.read())["detail"]
        return response.status
    finally:
        connection.close()


def test_embedding_is_computed_once_then_cached(server, coffee_id):
    first = call(server.url, "POST", f"/api/images/{coffee_id}/embed")[1]
    second = call(server.url, "POST", f"/api/images/{coffee_id}/embed")[1]
    assert second["cached"] is True and second["embed_ms"] == 0.0
    assert first["cached"] is False or first["embed_ms"] == 0.0  # the upload may have been embedded already


def test_predict_matches_the_library(server, coffee_id, sample_image_path):
    import granseg

    predictor = granseg.load_predictor("hierarchy")
    predictor.set_image(granseg.load_image(sample_image_path))
    expected = predictor.predict(point_coords=[CUP], point_labels=[1], granularity="all")
    body = {"points": [CUP], "labels": [1], "granularity": 0.5, "thumbnails": True}
    status, out, _ = call(server.url, "POST", f"/api/images/{coffee_id}/predict", body)
    assert status == 200, out
    assert out["area"] == int(expected.masks[4].sum())
    assert [t["area"] for t in out["thumbnails"]] == [int(m.sum()) for m in expected.masks]
    assert out["mask"].startswith("data:image/png;base64,")
    status, one, _ = call(
        server.url, "POST", f"/api/images/{coffee_id}/predict", {**body, "granularity": 1.0}
    )
    assert one["area"] == int(expected.masks[9].sum()) != out["area"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"points": [[5000, 10]], "labels": [1]}, "outside"),
        ({"points": [[10, 10]], "labels": [1], "granularity": 3}, "granularity"),
        ({"points": [[10, 10]], "labels": [0]}, "positive"),
        ({"points": "nope"}, "points are"),
    ],
)
def test_predict_bad_prompts_are_400(server, coffee_id, body, message):
    status, out, _ = call(server.url, "POST", f"/api/images/{coffee_id}/predict", body)
    assert status == 400 and message in out["detail"]


def _commit(server, image_id, name, g, points=None, labels=None):
    body = {"points": points or [CUP], "labels": labels or [1], "granularity": g, "name": name}
    status, obj, _ = call(server.url, "POST", f"/api/images/{image_id}/objects", body)
    assert status == 200, obj
    return obj


def test_objects_commit_rename_hide_delete_and_autosave(server, images_dir):
    _, meta, _ = call(server.url, "POST", "/api/folder/open", {"path": "coffee.jpg"})
    image_id = meta["id"]
    cup = _commit(server, image_id, "cup", 1.0)
    wall = _commit(server, image_id, "inner wall", 0.3)
    assert cup["area"] > wall["area"] > 0 and cup["granularity"] == 1.0 and wall["points"] == [CUP]
    status, renamed, _ = call(
        server.url, "PATCH", f"/api/images/{image_id}/objects/{cup['id']}", {"name": "mug"}
    )
    assert status == 200 and renamed["name"] == "mug"
    call(server.url, "PATCH", f"/api/images/{image_id}/objects/{wall['id']}", {"hidden": True})
    saved = json.loads((server.workdir / "images" / image_id / "objects.json").read_text())
    assert [(o["name"], o["hidden"]) for o in saved["objects"]] == [("mug", False), ("inner wall", True)]
    # re-edit: new prompts and g recompute the mask
    status, edited, _ = call(
        server.url,
        "PATCH",
        f"/api/images/{image_id}/objects/{wall['id']}",
        {"points": [CUP], "granularity": 1.0},
    )
    assert status == 200 and edited["area"] == cup["area"] and edited["granularity"] == 1.0
    assert call(server.url, "DELETE", f"/api/images/{image_id}/objects/{wall['id']}")[0] == 200
    assert [o["name"] for o in call(server.url, "GET", f"/api/images/{image_id}/objects")[1]] == ["mug"]
    assert call(server.url, "DELETE", f"/api/images/{image_id}/objects/{wall['id']}")[0] == 404
    status, out, _ = call(server.url, "PATCH", f"/api/images/{image_id}/objects/{cup['id']}", {"name": "  "})
    assert status == 400
    with ServerThread(AppConfig(model="hierarchy", workdir=str(server.workdir))) as restarted:  # a new server
        assert [o["name"] for o in call(restarted.url, "GET", f"/api/images/{image_id}/objects")[1]] == [
            "mug"
        ]


def test_coco_export_is_valid_for_pycocotools_eval_and_pseudo_schema(server, coffee_id):
    from pycocotools.coco import COCO

    from granseg.eval.whole_image import evaluate_ar
    from granseg.io.masks import decode_rle
    from granseg.pseudo.schema import PSEUDO_LABEL_SCHEMA

    _commit(server, coffee_id, "cup", 1.0)
    _commit(server, coffee_id, "part", 0.2)
    status, doc, headers = call(server.url, "GET", f"/api/images/{coffee_id}/export?format=coco")
    assert status == 200 and "attachment" in headers["content-disposition"]
    coco = COCO()
    coco.dataset = doc
    coco.createIndex()
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) >= 2
    for ann in anns:
        mask = coco.annToMask(ann).astype(bool)
        assert mask.sum() == ann["area"] > 0
        assert np.array_equal(mask, decode_rle(ann["segmentation"]))
        assert 0.1 <= ann["granularity"] <= 1.0 and ann["point_coords"] and ann["point_labels"]
    import jsonschema

    jsonschema.validate(doc, PSEUDO_LABEL_SCHEMA)
    metrics = evaluate_ar(doc, {"coffee": doc}, max_dets=(10,))
    assert metrics  # the export reads as ground truth and as predictions; predicting itself is perfect
    values = [v for k, v in metrics.items() if isinstance(v, float)]
    assert values and max(values) == pytest.approx(1.0)


def test_png_and_polygon_exports(server, coffee_id):
    import cv2

    from granseg.io.masks import polygons_to_mask

    objects = call(server.url, "GET", f"/api/images/{coffee_id}/objects")[1]
    status, data, _ = call(server.url, "GET", f"/api/images/{coffee_id}/export?format=png")
    assert status == 200
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert "labels.png" in names and "objects.json" in names
    masks = [n for n in names if n.startswith("masks/")]
    assert len(masks) == len(objects)
    first = cv2.imdecode(np.frombuffer(archive.read(masks[0]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert first.shape == (400, 600) and (first > 0).sum() == objects[0]["area"]
    status, doc, _ = call(server.url, "GET", f"/api/images/{coffee_id}/export?format=polygons")
    mask = polygons_to_mask(doc["objects"][0]["polygons"], 400, 600)
    # polygons are outer contours (no holes, granseg.io.masks.mask_to_polygons): compare with the filled mask
    contours, _ = cv2.findContours((first > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = cv2.drawContours(np.zeros((400, 600), np.uint8), contours, -1, 1, -1) > 0
    assert abs(int(mask.sum()) - int(filled.sum())) / int(filled.sum()) < 0.1
    assert call(server.url, "GET", f"/api/images/{coffee_id}/export?format=tiff")[0] == 400


def test_reopen_an_export_and_keep_editing(tmp_path, sample_image_path, server, coffee_id):
    doc = call(server.url, "GET", f"/api/images/{coffee_id}/export?format=coco")[1]
    config = AppConfig(model="hierarchy", workdir=str(tmp_path / "fresh"))
    with ServerThread(config) as other:
        _, meta, _ = call(other.url, "POST", "/api/upload?name=c.jpg", raw=sample_image_path.read_bytes())
        status, out, _ = call(
            other.url, "POST", f"/api/images/{meta['id']}/import", raw=json.dumps(doc).encode()
        )
        assert status == 200 and out["added"] == len(doc["annotations"])
        again = call(other.url, "GET", f"/api/images/{meta['id']}/export?format=coco")[1]
        assert [a["segmentation"] for a in again["annotations"]] == [
            a["segmentation"] for a in doc["annotations"]
        ]
        assert [a["granularity"] for a in again["annotations"]] == [
            a["granularity"] for a in doc["annotations"]
        ]
        first = out["objects"][0]
        status, edited, _ = call(
            other.url,
            "PATCH",
            f"/api/images/{meta['id']}/objects/{first['id']}",
            {"points": first["points"], "labels": first["labels"], "granularity": 0.1},
        )
        assert status == 200 and edited["granularity"] == 0.1
        bad = call(other.url, "POST", f"/api/images/{meta['id']}/import", raw=b'{"annotations": [{"x": 1}]}')
        assert bad[0] == 400


def _finished(server, job):
    import time

    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = call(server.url, "GET", f"/api/jobs/{job['id']}")[1]
    return job


def test_whole_image_job_reads_the_hierarchy_tree(server, coffee_id):
    status, job, _ = call(server.url, "POST", f"/api/images/{coffee_id}/auto", {"granularity": 0.5})
    assert status == 200
    job = _finished(server, job)
    assert job["state"] == "done" and job["total"] == job["done"] == 1 and job["count"] > 0 and job["overlay"]
    bad = call(server.url, "POST", f"/api/images/{coffee_id}/auto", {"granularity": 0.5, "source": "nope"})
    assert bad[0] == 400


def test_whole_image_partition_job_gives_every_pixel_one_region(server, coffee_id):
    status, job, _ = call(
        server.url, "POST", f"/api/images/{coffee_id}/auto", {"granularity": 0.3, "source": "partition"}
    )
    assert status == 200
    job = _finished(server, job)
    assert job["state"] == "done" and job["total"] == job["done"] == 1 and job["count"] > 1 and job["overlay"]
    before = len(call(server.url, "GET", f"/api/images/{coffee_id}/objects")[1])
    assert call(server.url, "POST", f"/api/jobs/{job['id']}/commit")[1]["added"] == job["count"]
    added = call(server.url, "GET", f"/api/images/{coffee_id}/objects")[1][before:]
    assert (
        sum(o["area"] for o in added) == 600 * 400
    )  # the regions tile the image (disjoint: test_partition_cuts)
    assert all(o["granularity"] == 0.3 for o in added)


def test_whole_image_job_with_progress_and_commit(server, coffee_id):
    status, job, _ = call(
        server.url,
        "POST",
        f"/api/images/{coffee_id}/auto",
        {"granularity": 0.5, "points_per_side": 4, "source": "grid"},
    )
    assert status == 200 and job["total"] == 16
    job = _finished(server, job)
    assert job["state"] == "done" and job["done"] == 16 and job["count"] > 0 and job["overlay"]
    before = len(call(server.url, "GET", f"/api/images/{coffee_id}/objects")[1])
    assert call(server.url, "POST", f"/api/jobs/{job['id']}/commit")[1]["added"] == job["count"]
    after = call(server.url, "GET", f"/api/images/{coffee_id}/objects")[1]
    assert len(after) == before + job["count"] and all(o["granularity"] == 0.5 for o in after[before:])
    bad = call(
        server.url, "POST", f"/api/images/{coffee_id}/auto", {"granularity": 0.5, "points_per_side": 500}
    )
    assert bad[0] == 400


def test_info_hides_video_and_index_is_served(server):
    saved = AppConfig.from_json(server.workdir / "config.json")  # settings saved beside the work
    assert saved.model == "hierarchy" and saved.workdir == str(server.workdir)
    status, info, _ = call(server.url, "GET", "/api/info")
    assert status == 200 and info["video"] is False and info["model"] == "hierarchy"
    status, page, _ = call(server.url, "GET", "/")
    assert status == 200 and b'id="video-tab"' in page and b"hidden" in page and b"cdn" not in page.lower()


def test_keep_alive_requests_are_not_delayed_by_nagle(server):
    """A pre-bound listening socket must be IPPROTO_TCP, or asyncio leaves Nagle on and every keep-alive response
    waits ~40 ms for the client's delayed ACK (uvicorn issue #3149); browsers reuse connections, so it matters."""
    import http.client
    import statistics
    import time

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    times = []
    try:
        for _ in range(15):
            start = time.perf_counter()
            connection.request("GET", "/api/info")
            response = connection.getresponse()
            response.read()
            times.append(time.perf_counter() - start)
    finally:
        connection.close()
    assert statistics.median(times[1:]) < 0.03, times


def test_the_server_compiles_the_click_path_at_start(server):
    """The engine warms the hierarchy's compiled click path up in a background thread at start (a fresh install's
    first click would otherwise wait ~28 s of CPU for numba); the thread finishes and the compiled functions hold
    signatures."""
    thread = server.app.state.granseg.engine.warm_up_thread
    assert thread is not None
    thread.join(timeout=300)
    assert not thread.is_alive() and server.app.state.granseg.engine.warm_up_seconds is not None
    from granseg.regions.maxflow import default_backend

    if default_backend() == "numba":
        from granseg.regions import graphcut_compiled, pixelcut_compiled

        assert pixelcut_compiled.refine_window.signatures and graphcut_compiled.grabcut_round.signatures
