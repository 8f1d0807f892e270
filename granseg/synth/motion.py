"""Synthetic moving scenes: objects made of two coloured parts translate and rotate over a textured
background, pass in front of one another, with exact per-frame visible masks of every object and part.

>>> clip = generate_moving_scene(seed=0, n_frames=60, size=160)
>>> clip.frames.shape                     # T x H x W x 3 uint8
>>> clip.masks[clip.objects[0].node_id]   # T x H x W bool, the object's visible pixels
>>> clip.point(clip.objects[0].part_ids[0], t=0)   # (x, y) deep inside that part on frame 0

Node ids: object ``k`` (1-based, back to front) is ``10 k``; its parts ``10 k + 1`` and ``10 k + 2``, split by a
line through the object's centre that turns with it. Objects are drawn in order, so a later object occludes an
earlier one where they overlap; masks are the *visible* pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from granseg.synth.shapes import rasterise, shape_outline
from granseg.synth.textures import hsv_colour, paint_texture


@dataclass
class MovingObject:
    """One object: outline ``(N, 2)`` (x, y) offsets at angle 0, centre ``(x, y)`` px on frame 0, velocity px per
    frame, angular velocity rad per frame, part colours ``(2, 3)`` float RGB."""

    node_id: int
    outline: np.ndarray
    center: tuple[float, float]
    velocity: tuple[float, float]
    spin: float
    colours: np.ndarray
    split: float = 0.0  # offset of the part split line from the centre, px

    @property
    def part_ids(self) -> tuple[int, int]:
        return self.node_id + 1, self.node_id + 2

    def pose(self, t: int) -> tuple[np.ndarray, tuple[float, float], float]:
        """Outline offsets, centre and angle on frame ``t``."""
        angle = self.spin * t
        cos_a, sin_a = np.cos(angle), np.sin(angle)
        x, y = self.outline[:, 0], self.outline[:, 1]
        rotated = np.stack([x * cos_a - y * sin_a, x * sin_a + y * cos_a], axis=1)
        return rotated, (self.center[0] + self.velocity[0] * t, self.center[1] + self.velocity[1] * t), angle


@dataclass
class MovingScene:
    """``frames``: ``T x H x W x 3`` uint8; ``masks``: node id -> ``T x H x W`` bool visible pixels."""

    frames: np.ndarray
    objects: list[MovingObject]
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    def point(self, node_id: int, t: int = 0) -> tuple[float, float]:
        """``(x, y)`` of the pixel deepest inside node ``node_id`` on frame ``t`` (its visible part)."""
        mask = self.masks[node_id][t]
        if not mask.any():
            raise ValueError(f"node {node_id} is not visible on frame {t}")
        dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), mask.shape)
        return float(x), float(y)


def _random_object(
    rng: np.random.Generator, index: int, size: int, n_frames: int, heading: float
) -> MovingObject:
    """Starts on a circle around the centre at angle ``heading`` and ends near the opposite side, so objects
    start apart and cross (occlusions) mid-clip."""
    radius = size * rng.uniform(0.13, 0.18)
    outline = shape_outline(str(rng.choice(["ellipse", "rectangle", "superellipse", "blob"])), rng, radius)
    direction = np.array([np.cos(heading), np.sin(heading)])
    start = size / 2 + 0.27 * size * direction + rng.uniform(-0.03, 0.03, 2) * size
    target = size / 2 - 0.22 * size * direction + rng.uniform(-0.05, 0.05, 2) * size
    velocity = (target - start) / max(1, n_frames - 1)
    hue = rng.uniform(0, 1)
    colours = np.stack(
        [hsv_colour(hue, 0.75, 0.9), hsv_colour(hue + rng.uniform(0.3, 0.7), 0.8, rng.uniform(0.35, 0.6))]
    )
    spin = rng.uniform(-1.0, 1.0) * np.pi / max(1, n_frames)  # up to half a turn over the clip
    return MovingObject(10 * index, outline, tuple(start), tuple(velocity), float(spin), colours)


def generate_moving_scene(
    seed: int = 0, n_frames: int = 60, size: int = 160, n_objects: int = 2
) -> MovingScene:
    """A clip of ``n_frames`` square ``size`` px frames with ``n_objects`` two-part objects (see module doc)."""
    rng = np.random.default_rng(seed)
    hw = (size, size)
    background = paint_texture(
        "noise",
        rng,
        (0, 0, size, size),
        hsv_colour(rng.uniform(0, 1), 0.25, 0.55),
        hsv_colour(rng.uniform(0, 1), 0.2, 0.75),
        size / 6,
    )
    offset = rng.uniform(0, 2 * np.pi)
    objects = [
        _random_object(rng, k + 1, size, n_frames, offset + 2 * np.pi * k / n_objects)
        for k in range(n_objects)
    ]
    frames = np.zeros((n_frames, size, size, 3), dtype=np.uint8)
    masks = {
        node: np.zeros((n_frames, size, size), dtype=bool)
        for o in objects
        for node in (o.node_id, *o.part_ids)
    }
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    noise = rng.normal(0, 4, (n_frames, size, size, 3))
    for t in range(n_frames):
        canvas = background.copy()
        for obj in objects:
            outline, (cx, cy), angle = obj.pose(t)
            inside = rasterise(outline, (cx, cy), hw)
            v_local = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
            u_local = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
            first = inside & (v_local > obj.split)
            stripes = (np.mod(u_local, 8.0) < 4.0)[..., None] * 0.08  # texture that moves with the object
            for part_mask, colour in ((first, obj.colours[0]), (inside & ~first, obj.colours[1])):
                canvas[part_mask] = (colour[None, None] * (1 - stripes) + stripes)[part_mask]
            for other in masks:  # an object in front hides what is behind it
                masks[other][t] &= ~inside
            masks[obj.node_id][t] = inside
            masks[obj.part_ids[0]][t] = first
            masks[obj.part_ids[1]][t] = inside & ~first
        frames[t] = np.clip(canvas * 255.0 + noise[t], 0, 255).astype(np.uint8)
    return MovingScene(frames, objects, masks)
