"""Procedural hierarchical scenes: textured background, objects made of parts with sub-parts, occlusion, noise.

Construction of one object (all masks H x W bool, pixel coordinates x right, y down):
  1. a *body* shape and ``parts - 1`` further shapes placed around/inside it (attached limbs or embedded panels);
     later parts lie on top of earlier ones, so the visible part regions tile the object;
  2. sub-parts: small shapes centred on a pixel of their part and clipped to it (later ones on top);
  3. colours: one hue family per object; sibling parts get well separated brightness levels and (when allowed)
     different texture families; sub-parts contrast with their part.
Objects are painted in order; a later object hides what it covers, and every node keeps only its visible pixels.
Nodes left with fewer than ``min_node_area`` visible pixels are dropped. Everything is drawn from one
``numpy.random.Generator(seed)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from granseg.errors import InputError
from granseg.regions.granularity import granularity_from_areas
from granseg.synth.config import SynthConfig
from granseg.synth.scene import Scene, SceneNode
from granseg.synth.shapes import rasterise, shape_outline
from granseg.synth.textures import accent_colour, hsv_colour, paint_texture

_PLACEMENT_ATTEMPTS = 20
_SEPARATION_PX = 2
_MIN_CONTRAST = 0.12
_COLOUR_ATTEMPTS = 8


class _Region:
    """A node while it is being built: its own-painted pixels (before occlusion by later objects)."""

    def __init__(self, level: str, mask: np.ndarray, shape: str, texture: str, parent: _Region | None):
        self.level = level
        self.mask = mask
        self.shape = shape
        self.texture = texture
        self.parent = parent
        self.children: list[_Region] = []


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _draw(rng: np.random.Generator, classes: tuple[str, ...], count: int) -> list[str]:
    """``count`` class names drawn uniformly with replacement."""
    return [classes[i] for i in rng.integers(0, len(classes), count)]


def _pick(rng: np.random.Generator, classes: tuple[str, ...], count: int) -> list[str]:
    """``count`` class names, all different while there are enough classes."""
    if count <= len(classes):
        return [classes[i] for i in rng.permutation(len(classes))[:count]]
    return [classes[i] for i in rng.integers(0, len(classes), count)]


def _build_object(
    rng: np.random.Generator, config: SynthConfig, radius: float, center: np.ndarray
) -> _Region:
    """Object region with its parts and sub-parts (own pixels, not yet occluded by other objects)."""
    hw = config.hw
    n_parts = int(rng.integers(config.parts_per_object[0], config.parts_per_object[1] + 1))
    body_shape = _draw(rng, config.shape_classes, 1)[0]
    shapes = [body_shape, *_draw(rng, config.shape_classes, n_parts - 1)]
    full = [rasterise(shape_outline(body_shape, rng, radius), center, hw)]
    for _ in range(n_parts - 1):
        angle = rng.uniform(0, 2 * np.pi)
        offset = radius * rng.uniform(0.2, 1.0) * np.array([np.cos(angle), np.sin(angle)])
        part_radius = radius * rng.uniform(0.3, 0.6)
        full.append(rasterise(shape_outline(shapes[len(full)], rng, part_radius), center + offset, hw))

    union = np.logical_or.reduce(full)
    obj = _Region("object", union, body_shape, "", None)
    covered = np.zeros(hw, dtype=bool)
    part_masks = [None] * n_parts
    for index in range(n_parts - 1, -1, -1):
        part_masks[index] = full[index] & ~covered
        covered |= full[index]

    textures = _pick(rng, config.texture_classes, n_parts)
    for index, mask in enumerate(part_masks):
        part = _Region("part", mask, shapes[index], textures[index], obj)
        obj.children.append(part)
        n_sub = int(rng.integers(config.subparts_per_part[0], config.subparts_per_part[1] + 1))
        pixels = np.flatnonzero(mask)
        if pixels.size == 0 or n_sub == 0:
            continue
        part_radius = np.sqrt(pixels.size / np.pi)
        sub_full = []
        sub_shapes = _draw(rng, config.shape_classes, n_sub)
        for shape in sub_shapes:
            flat = pixels[int(rng.integers(pixels.size))]
            sub_center = np.array([flat % hw[1], flat // hw[1]], dtype=np.float64)
            outline = shape_outline(shape, rng, part_radius * rng.uniform(0.25, 0.5))
            sub_full.append(rasterise(outline, sub_center, hw) & mask)
        sub_textures = _draw(rng, config.texture_classes, n_sub)
        covered = np.zeros(hw, dtype=bool)
        subs = []
        for index_sub in range(n_sub - 1, -1, -1):
            subs.append(
                _Region(
                    "subpart",
                    sub_full[index_sub] & ~covered,
                    sub_shapes[index_sub],
                    sub_textures[index_sub],
                    part,
                )
            )
            covered |= sub_full[index_sub]
        part.children = subs[::-1]
    return obj


def _paint_object(rng: np.random.Generator, canvas: np.ndarray, obj: _Region, scale: float) -> None:
    """Paint the object's parts and sub-parts onto ``canvas`` (H x W x 3 float RGB in [0, 1]).

    Each part's mean colour differs by >= ``_MIN_CONTRAST`` (RGB distance, 0..1 units) from its sibling parts and
    from what the object covers; each sub-part's from its part and its earlier sibling sub-parts (colours are
    redrawn up to ``_COLOUR_ATTEMPTS`` times until it holds).
    """
    hue = rng.uniform(0, 1)
    saturation = rng.uniform(0.45, 0.9)
    n_parts = len(obj.children)
    values = np.linspace(0.3, 0.95, n_parts) if n_parts > 1 else np.array([rng.uniform(0.4, 0.9)])
    values = values[rng.permutation(n_parts)] + rng.uniform(-0.03, 0.03, n_parts)
    references = [canvas[obj.mask].mean(axis=0)]
    for part, value in zip(obj.children, values):

        def part_colours(attempt: int, value: float = value) -> tuple[np.ndarray, np.ndarray]:
            v = value if attempt == 0 else rng.uniform(0.2, 1.0)
            base = hsv_colour(hue + rng.uniform(-0.06, 0.06), saturation * rng.uniform(0.7, 1.1), v)
            return base, accent_colour(rng, base, 0.2)

        part_mean = _paint_contrasting(rng, canvas, part, part_colours, references, scale)
        if part_mean is None:
            continue
        references.append(part_mean)
        bright_part = float(part_mean.max()) > 0.6  # HSV value of the part's mean colour
        sub_references = [part_mean]
        for sub in part.children:

            def sub_colours(attempt: int, bright_part: bool = bright_part) -> tuple[np.ndarray, np.ndarray]:
                dark = bright_part if attempt == 0 else bool(rng.integers(2))
                v = rng.uniform(0.1, 0.3) if dark else rng.uniform(0.8, 1.0)
                base = hsv_colour(hue + rng.uniform(-0.12, 0.12), saturation * rng.uniform(0.6, 1.1), v)
                return base, accent_colour(rng, base, 0.15)

            sub_mean = _paint_contrasting(rng, canvas, sub, sub_colours, sub_references, scale / 2)
            if sub_mean is not None:
                sub_references.append(sub_mean)


def _paint_contrasting(
    rng: np.random.Generator,
    canvas: np.ndarray,
    region: _Region,
    draw_colours: Callable[[int], tuple[np.ndarray, np.ndarray]],
    references: list[np.ndarray],
    scale: float,
) -> np.ndarray | None:
    """Paint ``region`` with colours from ``draw_colours(attempt)``, redrawn until the painted mean colour is
    >= ``_MIN_CONTRAST`` away from every reference (last attempt kept). Returns the mean colour, None if empty."""
    box = _bbox(region.mask)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    crop = region.mask[y0:y1, x0:x1]
    for attempt in range(_COLOUR_ATTEMPTS):
        c1, c2 = draw_colours(attempt)
        pixels = paint_texture(region.texture, rng, box, c1, c2, scale)[crop]
        mean = pixels.mean(axis=0)
        if min(np.linalg.norm(mean - ref) for ref in references) >= _MIN_CONTRAST:
            break
    canvas[y0:y1, x0:x1][crop] = pixels
    return mean


def _background(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    h, w = config.hw
    base = hsv_colour(rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8))
    kind = _draw(rng, config.texture_classes, 1)[0]
    return paint_texture(kind, rng, (0, 0, h, w), base, accent_colour(rng, base, 0.1), min(h, w) * 0.25)


def generate_scene(seed: int, config: SynthConfig | None = None) -> Scene:
    """One deterministic scene for ``seed`` (same seed and config -> identical image and masks)."""
    config = config or SynthConfig()
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    h, w = config.hw
    short = min(h, w)
    canvas = _background(rng, config)

    n_objects = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    objects: list[_Region] = []
    occupied = np.zeros((h, w), dtype=bool)
    for _ in range(n_objects):
        for _attempt in range(_PLACEMENT_ATTEMPTS):
            radius = short * rng.uniform(*config.object_scale)
            margin = min(radius * 0.6, short / 2 - 1)
            center = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)])
            obj = _build_object(rng, config, radius, center)
            if not obj.mask.any():
                continue
            if config.occlusion:
                break
            grown = _grow(obj.mask, _SEPARATION_PX)
            if not (grown & occupied).any():
                break
        else:
            continue
        occupied |= obj.mask
        objects.append(obj)
        _paint_object(rng, canvas, obj, radius)

    image = canvas * np.float32(255.0)
    if config.noise_sigma > 0:
        image += _gaussian_noise(rng, image.shape) * np.float32(config.noise_sigma)
    np.rint(image, out=image)
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    return Scene(
        image=image,
        nodes=_visible_nodes(objects, (h, w), max(1, config.min_node_area)),
        seed=int(seed),
        config=config,
    )


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """(65536,) float32 standard normal quantiles at (i + 0.5) / 65536 (tails cut at +-4.3 sigma)."""
    from scipy.special import ndtri

    return ndtri((np.arange(1 << 16) + 0.5) / (1 << 16)).astype(np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise by inverse-CDF table lookup (about 4x faster than rng.standard_normal)."""
    return np.take(_normal_quantiles(), rng.integers(0, 1 << 16, shape, dtype=np.uint16))


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` dilated by ``pixels`` px (square structuring element)."""
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), dtype=np.uint8)
    return cv2.dilate(mask.view(np.uint8), kernel).view(bool)


def _visible_nodes(objects: list[_Region], hw: tuple[int, int], min_area: int) -> list[SceneNode]:
    """Occlude each object by the later ones, drop nodes under ``min_area`` visible pixels (with their subtrees),
    number the rest depth first and set their granularity."""
    covered = np.zeros(hw, dtype=bool)
    visible: list[list[tuple[_Region, np.ndarray, float]]] = []
    for obj in reversed(objects):
        hidden = covered.copy()
        entries = []
        stack = [obj]
        while stack:
            region = stack.pop(0)
            mask = region.mask & ~hidden
            area = np.count_nonzero(mask)
            if area >= min_area:
                entries.append((region, mask, area / np.count_nonzero(region.mask)))
                stack[:0] = region.children  # depth first: object, part, its sub-parts, next part ...
        covered |= obj.mask
        visible.append(entries)
    visible.reverse()

    nodes: list[SceneNode] = []
    next_id = 1
    for entries in visible:
        if not entries:
            continue
        ids: dict[int, int] = {}
        object_id = next_id
        granularity = granularity_from_areas([int(mask.sum()) for _, mask, _ in entries])
        for (region, mask, visible_fraction), g in zip(entries, granularity):
            ids[id(region)] = next_id
            nodes.append(
                SceneNode(
                    id=next_id,
                    parent=None if region.parent is None else ids[id(region.parent)],
                    level=region.level,
                    object_id=object_id,
                    mask=mask,
                    granularity=float(g),
                    shape=region.shape,
                    texture=region.texture,
                    visible_fraction=float(visible_fraction),
                )
            )
            next_id += 1
    return nodes


def generate_scenes(seeds: Iterable[int] | int, config: SynthConfig | None = None) -> Iterator[Scene]:
    """Scenes for each seed in ``seeds`` (an int ``n`` means seeds 0..n-1), generated lazily."""
    config = config or SynthConfig()
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        yield generate_scene(int(seed), config)
