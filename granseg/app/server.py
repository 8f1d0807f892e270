"""FastAPI routes of ``granseg serve`` and the static front-end (``granseg/app/static``, no build step).

JSON API (image ids are 16 hex digits; coordinates in pixels of the original image):

* ``GET /api/info``: model, limits, whether a folder is served; ``GET /api/recent``: images opened before.
* ``GET /api/folder``, ``POST /api/folder/open {"path"}``: the ``--images`` folder, confined to it.
* ``POST /api/upload?name=F`` (raw file bytes): size and pixel limits; non-images refused (415).
* ``GET /api/images/{id}``, ``/display.jpg``; ``POST /api/images/{id}/embed`` (cached per image).
* ``POST /api/images/{id}/predict {"points", "labels", "box", "granularity", "thumbnails"}``: the mask as a PNG
  overlay; with ``thumbnails`` also the ten g = 0.1 .. 1.0 thumbnails.
* ``/api/images/{id}/objects`` (GET list, POST commit), ``/objects/{oid}`` (PATCH, DELETE), ``/objects/overlay``.
* ``GET /api/images/{id}/export?format=coco|png|polygons``, ``POST /api/images/{id}/import`` (a COCO export).
* ``POST /api/images/{id}/auto {"granularity", "points_per_side", "source"}``, ``GET /api/jobs/{jid}``,
  ``POST /api/jobs/{jid}/commit``, ``POST /api/jobs/{jid}/cancel``.

Errors are JSON ``{"detail": message}``: 400 bad input, 403 outside the folder, 404 unknown, 413 too large,
415 not an image, 429 a whole-image job already running, 503 work queue full (with ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from granseg.app import render
from granseg.app.config import AppConfig
from granseg.app.engine import Busy, Engine, WorkQueue
from granseg.app.export import coco_document, objects_from_export, png_zip, polygons_document
from granseg.app.images import ImageStore, NotFoundError, OutsideFolderError, check_image_id, list_folder
from granseg.app.jobs import AutoJobs, TooManyJobs
from granseg.app.sessions import ObjectStore, mask_fields
from granseg.errors import ImageDecodeError, InputError

STATIC = Path(__file__).parent / "static"
MAX_JSON_BYTES = 64 * 1024 * 1024


class TooLarge(InputError):
    pass


def default_workdir() -> Path:
    import os

    home = os.environ.get("GRANSEG_HOME") or str(Path.home() / ".cache" / "granseg")
    return Path(home) / "app"


def _error_response(exc: Exception) -> JSONResponse:
    status = 400
    headers = {}
    if isinstance(exc, OutsideFolderError):
        status = 403
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, TooLarge):
        status = 413
    elif isinstance(exc, ImageDecodeError):
        status = 415
    elif isinstance(exc, TooManyJobs):
        status = 429
    elif isinstance(exc, Busy):
        status, headers = 503, {"Retry-After": "1"}
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the file is larger than the limit of {limit / 1e6:.1f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the file is larger than the limit of {limit / 1e6:.1f} MB")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = 1024 * 1024) -> Any:
    try:
        return json.loads(await read_body(request, limit) or b"{}")
    except ValueError:
        raise InputError("the request body is not JSON") from None


def parse_prompts(body: dict[str, Any]) -> dict[str, Any]:
    """Validated prompt fields from a request body (the predictor checks the ranges against the image)."""
    if not isinstance(body, dict):
        raise InputError("expected a JSON object")
    points = body.get("points") or []
    labels = body.get("labels")
    box = body.get("box")
    try:
        points = [[float(x), float(y)] for x, y in points]
        labels = [int(v) for v in (labels if labels is not None else [1] * len(points))]
        box = None if box is None else [float(v) for v in box]
    except (TypeError, ValueError):
        raise InputError("points are [[x, y], ...], labels [1 or 0, ...], box [x0, y0, x1, y1]") from None
    if len(points) > 200:
        raise InputError("at most 200 clicks per object")
    granularity = body.get("granularity", 1.0)
    if granularity != "all":
        try:
            granularity = round(float(granularity), 4)
        except (TypeError, ValueError):
            raise InputError("granularity is a number in [0.1, 1] or 'all'") from None
    return {"points": points, "labels": labels, "box": box, "granularity": granularity}


class App:
    """The server's state: images, model engine, objects, jobs. Routes are registered by :func:`create_app`."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        workdir = Path(config.workdir) if config.workdir else default_workdir()
        images_dir = Path(config.images_dir) if config.images_dir else None
        self.images = ImageStore(workdir, images_dir, config.max_pixels, keep=config.cache_images)
        config.to_json(workdir / "config.json")  # the settings this work folder was last served with
        self.engine = Engine(config.model, config.device, self.images, config.cache_images, config.threads)
        self.queue = WorkQueue(config.max_pending)
        self.objects = ObjectStore(self.images.root)
        self.jobs = AutoJobs(self.engine.model, self.images, config.max_jobs)

    # ---- worker-thread functions ----------------------------------------------------------------------------
    def _embed(self, image_id: str) -> dict[str, Any]:
        _, seconds = self.engine.predictor(image_id)
        return {"image_id": image_id, "embed_ms": round(seconds * 1000, 1), "cached": seconds == 0.0}

    def _predict(self, image_id: str, prompts: dict[str, Any], thumbs: bool) -> dict[str, Any]:
        start = time.perf_counter()
        g = prompts["granularity"]
        levels = "all" if thumbs else g
        pred = self.engine.predict(image_id, prompts["points"], prompts["labels"], prompts["box"], levels)
        if thumbs:
            pick = 9 if g == "all" else min(range(10), key=lambda k: abs(float(pred.granularity[k]) - g))
            exact = g == "all" or abs(float(pred.granularity[pick]) - g) < 1e-6
            mask, score = (pred.masks[pick], float(pred.scores[pick])) if exact else (None, None)
            if mask is None:
                one = self.engine.predict(image_id, prompts["points"], prompts["labels"], prompts["box"], g)
                mask, score = one.masks[0], float(one.scores[0])
        else:
            mask, score = pred.masks[0], float(pred.scores[0])
        out = {
            "granularity": g,
            "area": int(mask.sum()),
            "score": round(score, 4),
            "mask": render.data_url(render.overlay_png([mask], [render.CURRENT_COLOR]), "image/png"),
        }
        if thumbs:
            pictures = render.thumbnails(self.images.pixels(image_id), pred.masks)
            out["thumbnails"] = [
                {"granularity": float(level), "area": int(m.sum()), "src": render.data_url(p, "image/jpeg")}
                for level, m, p in zip(pred.granularity, pred.masks, pictures)
            ]
        out["compute_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return out

    def _commit(self, image_id: str, prompts: dict[str, Any], name: Any, object_id: int | None) -> dict:
        if prompts["granularity"] == "all":
            raise InputError("commit one granularity, not 'all'")
        pred = self.engine.predict(
            image_id, prompts["points"], prompts["labels"], prompts["box"], prompts["granularity"]
        )
        mask = pred.masks[0]
        if not mask.any():
            raise InputError("the mask is empty: add a click inside the object")
        fields = {**prompts, "score": round(float(pred.scores[0]), 4), **mask_fields(mask)}
        if object_id is None:
            return self.objects.add(image_id, {"name": name, **fields})
        if name is not None:
            fields["name"] = name
        return self.objects.update(image_id, object_id, fields)

    def _overlay(self, image_id: str) -> bytes:
        from granseg.io.masks import decode_rle

        objects = self.objects.list(image_id)
        meta = self.images.meta(image_id)
        visible = [o for o in objects if not o.get("hidden")]
        if not visible:
            visible_masks, colors = [], []
        else:
            visible_masks = [decode_rle(o["segmentation"]) for o in visible]
            colors = [render.object_color(int(o["id"]) - 1) for o in visible]
        if not visible_masks:
            import numpy as np

            visible_masks = [np.zeros((meta["height"], meta["width"]), dtype=bool)]
            colors = [render.CURRENT_COLOR]
        return render.overlay_png(visible_masks, colors, alpha=90)


def create_app(config: AppConfig) -> FastAPI:
    """The FastAPI application (routes below, static front-end at ``/``)."""
    state = App(config)

    @contextlib.asynccontextmanager
    async def lifespan(_api: FastAPI):
        yield
        state.queue.shutdown()
        state.jobs.shutdown()

    api = FastAPI(title="granseg", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    api.state.granseg = state

    @api.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return _error_response(exc)

    @api.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _error_response(exc)

    @api.exception_handler(TooManyJobs)
    async def _too_many(request: Request, exc: TooManyJobs) -> JSONResponse:
        return _error_response(exc)

    _register_pages(api, state)
    _register_images(api, state)
    _register_objects(api, state)
    _register_jobs(api, state)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    return api


def _obj_public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "segmentation"}


def _register_pages(api: FastAPI, state: App) -> None:
    @api.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @api.get("/api/info")
    def info() -> dict[str, Any]:
        cfg = state.config
        return {
            "model": state.engine.model_name,
            "folder": cfg.images_dir is not None,
            "max_upload_bytes": cfg.max_upload_bytes,
            "max_pixels": cfg.max_pixels,
            "video": False,
            "queue": {"pending": state.queue.pending, "max_pending": state.queue.max_pending},
        }

    @api.get("/api/recent")
    def recent() -> list[dict[str, Any]]:
        return state.images.recent()

    @api.get("/api/folder")
    def folder() -> dict[str, Any]:
        if state.images.images_dir is None:
            raise NotFoundError("the server was started without --images DIR")
        return {"images": list_folder(state.images.images_dir)}

    @api.post("/api/folder/open")
    async def folder_open(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        return state.images.open_folder(body.get("path") if isinstance(body, dict) else None)

    @api.post("/api/upload")
    async def upload(request: Request, name: str = "upload") -> dict[str, Any]:
        data = await read_body(request, state.config.max_upload_bytes)
        if not data:
            raise ImageDecodeError("the file is empty")
        state.queue.admit()  # decoding a large image is work too
        try:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(state.images.open_bytes, data, name)
        finally:
            state.queue.release()


def _register_images(api: FastAPI, state: App) -> None:
    @api.get("/api/images/{image_id}")
    def image_meta(image_id: str) -> dict[str, Any]:
        meta = state.images.meta(image_id)
        return {**meta, "embedded": state.engine.is_embedded(image_id)}

    @api.get("/api/images/{image_id}/display.jpg")
    def display(image_id: str) -> FileResponse:
        return FileResponse(state.images.display_path(image_id), media_type="image/jpeg")

    @api.post("/api/images/{image_id}/embed")
    async def embed(image_id: str) -> dict[str, Any]:
        state.images.meta(image_id)
        return await state.queue.run(state._embed, image_id)

    @api.post("/api/images/{image_id}/predict")
    async def predict(image_id: str, request: Request) -> dict[str, Any]:
        check_image_id(image_id)
        body = await read_json(request)
        prompts = parse_prompts(body)
        return await state.queue.run(state._predict, image_id, prompts, bool(body.get("thumbnails")))

    @api.get("/api/images/{image_id}/export")
    def export(image_id: str, format: str = "coco") -> Response:
        meta = state.images.meta(image_id)
        objects = state.objects.list(image_id)
        stem = Path(meta["name"]).stem or image_id
        if format == "coco":
            body, mime, name = (
                json.dumps(coco_document(meta, objects)),
                "application/json",
                f"{stem}_coco.json",
            )
        elif format == "polygons":
            body, mime, name = (
                json.dumps(polygons_document(meta, objects)),
                "application/json",
                f"{stem}_polygons.json",
            )
        elif format == "png":
            body, mime, name = png_zip(meta, objects), "application/zip", f"{stem}_masks.zip"
        else:
            raise InputError("format is coco, png or polygons")
        return Response(
            body, media_type=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    @api.post("/api/images/{image_id}/import")
    async def import_export(image_id: str, request: Request) -> dict[str, Any]:
        meta = state.images.meta(image_id)
        document = json.loads(await read_body(request, MAX_JSON_BYTES) or b"null")
        added = [
            state.objects.add(image_id, obj)
            for obj in objects_from_export(document, meta["height"], meta["width"])
        ]
        return {"added": len(added), "objects": [_obj_public(o) for o in state.objects.list(image_id)]}


def _register_objects(api: FastAPI, state: App) -> None:
    @api.get("/api/images/{image_id}/objects")
    def list_objects(image_id: str) -> list[dict[str, Any]]:
        return [_obj_public(o) for o in state.objects.list(image_id)]

    @api.get("/api/images/{image_id}/objects/overlay")
    async def overlay(image_id: str) -> Response:
        png = await state.queue.run(state._overlay, image_id)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @api.post("/api/images/{image_id}/objects")
    async def commit(image_id: str, request: Request) -> dict[str, Any]:
        state.images.meta(image_id)
        body = await read_json(request)
        prompts = parse_prompts(body)
        obj = await state.queue.run(state._commit, image_id, prompts, body.get("name"), None)
        return _obj_public(obj)

    @api.patch("/api/images/{image_id}/objects/{object_id}")
    async def change(image_id: str, object_id: int, request: Request) -> dict[str, Any]:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InputError("expected a JSON object")
        if any(key in body for key in ("points", "labels", "box", "granularity")):
            obj = await state.queue.run(
                state._commit, image_id, parse_prompts(body), body.get("name"), object_id
            )
            if "hidden" in body:
                obj = state.objects.update(image_id, object_id, {"hidden": body["hidden"]})
            return _obj_public(obj)
        return _obj_public(state.objects.update(image_id, object_id, body))

    @api.delete("/api/images/{image_id}/objects/{object_id}")
    def delete(image_id: str, object_id: int) -> dict[str, Any]:
        state.objects.delete(image_id, object_id)
        return {"deleted": object_id}


def _register_jobs(api: FastAPI, state: App) -> None:
    def public(job: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in job.items() if k not in ("records", "cancel")}
        out["count"] = len(job["records"])
        return out

    @api.post("/api/images/{image_id}/auto")
    async def auto(image_id: str, request: Request) -> dict[str, Any]:
        state.images.meta(image_id)
        body = await read_json(request)
        prompts = parse_prompts({"granularity": body.get("granularity", 1.0)})
        if prompts["granularity"] == "all" or not 0.1 <= prompts["granularity"] <= 1.0:
            raise InputError("whole-image mode takes one g in [0.1, 1]")
        per_side = body.get("points_per_side", 16)
        if not isinstance(per_side, int) or not 2 <= per_side <= 64:
            raise InputError("points_per_side is an integer in [2, 64]")
        source = body.get("source", "auto")
        if source not in ("auto", "grid", "tree", "partition"):
            raise InputError("source is one of auto, grid, tree, partition")
        return public(state.jobs.start(image_id, prompts["granularity"], per_side, source))

    @api.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, Any]:
        job = state.jobs.get(job_id)
        out = public(job)
        if job["state"] == "done" and job["records"]:
            png = await state.queue.run(_auto_overlay, job)
            out["overlay"] = render.data_url(png, "image/png")
        return out

    @api.post("/api/jobs/{job_id}/cancel")
    def job_cancel(job_id: str) -> dict[str, Any]:
        return public(state.jobs.cancel(job_id))

    @api.post("/api/jobs/{job_id}/commit")
    def job_commit(job_id: str) -> dict[str, Any]:
        job = state.jobs.get(job_id)
        if job["state"] != "done":
            raise InputError("the job has not finished")
        for index, record in enumerate(job["records"], start=1):
            state.objects.add(
                job["image_id"],
                {
                    "name": f"auto g={job['granularity']:.2f} #{index}",
                    "points": record["point_coords"],
                    "labels": [1] * len(record["point_coords"]),
                    "box": None,
                    "granularity": job["granularity"],
                    "score": round(min(1.0, max(0.0, float(record["score"]))), 4),
                    "segmentation": record["segmentation"],
                    "area": record["area"],
                    "bbox": record["bbox"],
                },
            )
        return {"added": len(job["records"])}


def _auto_overlay(job: dict[str, Any]) -> bytes:
    from granseg.io.masks import decode_rle

    records = sorted(job["records"], key=lambda r: -r["area"])  # large first, so small masks stay visible
    masks = [decode_rle(r["segmentation"]) for r in records]
    return render.overlay_png(masks, [render.object_color(i) for i in range(len(masks))], alpha=120)
