"""Boundary maps for the BSDS500 edge evaluation and the per-image run over a dataset (serial or in processes).

An edge map is a function ``image (H x W x 3 uint8) -> H x W float boundary strength``. The kinds
(:data:`EDGE_MAPS`) are chosen explicitly, or by the model with ``"auto"``:

* ``sobel``: Sobel magnitude + non-maximum suppression on the image itself (no model; ``--model auto`` / ``sobel``);
* ``ucm``: the mean of the ultrametric contour maps of five learned region trees grown from different superpixel
  starts (:func:`granseg.regions.ensemble.build_region_trees`, the ``hierarchy`` model's tree parameters;
  :func:`ensemble_contour_map`);
* ``ucm-single``: the ultrametric contour map of the ``hierarchy`` predictor's own tree
  (:func:`granseg.regions.tree.build_region_tree` ``merge="learned"``): a true UCM, whose thresholds are the tree's
  segmentations;
* ``features``: Sobel + NMS on a Gen2Seg model's feature image (the Gen2Seg paper's edge protocol);
* ``masks``: Sobel + NMS on the model's automatic whole-image masks (any model: the "Sobel on automatic masks"
  baseline of the SAM and Gen2Seg papers; :func:`granseg.eval.edges.boundary_map_from_masks`). The masks come from
  :class:`~granseg.predict.automatic.AutomaticSegmenter` with the official preset's filters on a 16 x 16 grid (SAM's
  edge protocol), all ten g levels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from granseg.errors import InputError

EDGE_MAPS = ("auto", "sobel", "ucm", "ucm-single", "features", "masks")
MASK_EDGE_POINTS_PER_SIDE = 16


def default_edge_map(model) -> str:
    """The edge map ``model`` gives: ``ucm`` for the hierarchy model, ``features`` for a Gen2Seg model."""
    from granseg.models.gen2seg import Gen2SegModel
    from granseg.predict.hierarchy import HierarchyModel

    if isinstance(model, HierarchyModel):
        return "ucm"
    if isinstance(model, Gen2SegModel):
        return "features"
    name = getattr(model, "name", type(model).__name__)
    raise InputError(
        f"model {name!r} gives no edge map (edges: 'sobel' without a model, 'hierarchy', or a Gen2Seg model)"
    )


def check_edge_map(model_name: str, kind: str) -> None:
    """InputError for a choice that cannot work whatever the model loads to (checked before any work)."""
    if kind not in EDGE_MAPS:
        raise InputError(f"edge map must be one of {', '.join(EDGE_MAPS)}, got {kind!r}")
    if model_name == "sobel" and kind not in ("auto", "sobel"):
        raise InputError(f"edge map {kind!r} needs a model (got 'sobel')")


def edge_map_function(model_name: str, device: str = "cpu", kind: str = "auto") -> Callable:
    """The edge-map function for ``model_name`` (``"sobel"``: no model) and ``kind`` (see :data:`EDGE_MAPS`)."""
    from granseg.eval.edges import sobel_nms

    check_edge_map(model_name, kind)
    if model_name == "sobel" or kind == "sobel":
        return sobel_nms
    from granseg.models.registry import load_model
    from granseg.predict.factory import create_predictor

    model = load_model(model_name, device=device)
    wanted = default_edge_map(model) if kind == "auto" else kind
    if wanted == "masks":
        return automatic_mask_edges(create_predictor(model))
    if wanted != default_edge_map(model) and not (
        wanted == "ucm-single" and default_edge_map(model) == "ucm"
    ):
        raise InputError(f"model {model_name!r} gives no {wanted!r} edge map")
    if wanted == "ucm":
        from granseg.regions.ensemble import build_region_trees

        params = model.config.tree_params()
        return lambda image: ensemble_contour_map(build_region_trees(image, params), image.shape[:2])
    if wanted == "ucm-single":
        from granseg.regions.tree import build_region_tree

        params = model.config.tree_params()
        return lambda image: tree_contour_map(
            build_region_tree(image, params, merge="learned"), image.shape[:2]
        )
    return lambda image: sobel_nms(model.feature_image(image))


def tree_contour_map(tree, original_size: tuple[int, int]) -> np.ndarray:
    """``H x W`` float32 ultrametric contour map of a region tree (:func:`granseg.eval.edges.ultrametric_contour_map`).

    A tree of the learned criterion has heights ``(1 - p(same)) ** height_power``; its map is ``1 - p(same)``
    (the power undone), which means the same in every image, so one threshold over a dataset (the ODS) means
    one probability; other trees' maps are divided by their image's largest height."""
    from granseg.eval.edges import ultrametric_contour_map

    ucm = ultrametric_contour_map(tree, original_size)
    if getattr(tree, "criterion", "handcrafted") == "learned":
        power = float(getattr(tree, "height_power", 1.0))  # heights (1 - p) ** power: back to 1 - p
        ucm = np.power(ucm, np.float32(1.0 / power)) if power != 1.0 else ucm
        ucm *= np.float32(min(1.0, float(np.max(tree.height)) ** (1.0 / power)))
    return ucm


def ensemble_contour_map(trees, original_size: tuple[int, int]) -> np.ndarray:
    """``H x W`` float32 mean of the :func:`tree_contour_map` of each learned tree in ``trees`` (one image; e.g.
    :func:`granseg.regions.ensemble.build_region_trees`). Not itself an ultrametric: a contour that only some
    trees keep gets a fraction of its height."""
    total = np.zeros(original_size, np.float32)
    for tree in trees:
        total += tree_contour_map(tree, original_size)
    return total / np.float32(max(len(trees), 1))


def automatic_mask_edges(predictor, points_per_side: int = MASK_EDGE_POINTS_PER_SIDE) -> Callable:
    """The ``masks`` edge map of ``predictor``: ``image -> H x W`` Sobel + NMS of its automatic masks."""
    from granseg.eval.edges import boundary_map_from_masks
    from granseg.io.masks import decode_rle
    from granseg.predict.automatic import AutomaticSegmenter, preset_config

    # the SAM protocol's grid for every model (hierarchy's region-tree readout would add every leaf's outline)
    config = preset_config("official", points_per_side=points_per_side, source="grid")
    segmenter = AutomaticSegmenter(predictor, config)

    def mask_edges(image: np.ndarray) -> np.ndarray:
        records = segmenter.generate(image)
        if not records:
            return np.zeros(image.shape[:2], dtype=np.float32)
        masks = np.stack([decode_rle(r["segmentation"]) for r in records])
        return boundary_map_from_masks(masks, np.asarray([r["score"] for r in records]))

    return mask_edges


_WORKER: dict = {}


def _init(root, split, model_name, device, kind, thresholds) -> None:
    from granseg.eval.datasets.bsds import BSDS500

    _WORKER.update(
        dataset=BSDS500(root, split), edges=edge_map_function(model_name, device, kind), thresholds=thresholds
    )


def _one(image_id: str):
    from granseg.eval.edges import evaluate_boundary_image

    image, gts = _WORKER["dataset"].load(image_id)
    return evaluate_boundary_image(_WORKER["edges"](image), gts, _WORKER["thresholds"], image_id)


def evaluate_bsds_images(
    root: str | Path,
    split: str,
    ids: list[str],
    model_name: str,
    thresholds: np.ndarray,
    device: str = "cpu",
    kind: str = "auto",
    workers: int = 1,
    quiet: bool = False,
) -> list:
    """Per-image boundary counts (:class:`granseg.eval.edges.ImageCounts`) of BSDS500 ``ids``, in ``ids`` order
    whatever ``workers`` is; each worker process builds its own edge-map function once."""
    from granseg.utils.progress import progress

    init_args = (root, split, model_name, device, kind, thresholds)
    if workers <= 1:
        _init(*init_args)
        return [_one(i) for i in progress(ids, desc="bsds500", quiet=quiet)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, initializer=_init, initargs=init_args) as pool:
        return list(progress(pool.map(_one, ids), desc="bsds500", total=len(ids), quiet=quiet))
