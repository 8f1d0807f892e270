"""Configuration of the procedural hierarchical scene generator, and the public shape/texture class names."""

from __future__ import annotations

import dataclasses

from granseg.config import Config
from granseg.errors import InputError

SHAPE_CLASSES: tuple[str, ...] = ("ellipse", "rectangle", "polygon", "star", "superellipse", "blob")
"""Every shape family the generator can draw (objects, parts and sub-parts)."""

TEXTURE_CLASSES: tuple[str, ...] = ("flat", "stripes", "checker", "dots", "gradient", "noise")
"""Every texture family the generator can paint (background, parts and sub-parts)."""

LEVELS: tuple[str, ...] = ("object", "part", "subpart")
"""Hierarchy levels of a scene node, coarse to fine."""


@dataclasses.dataclass
class SynthConfig(Config):
    """Parameters of :func:`granseg.synth.generate_scene`.

    Ranges are inclusive ``(low, high)`` pairs; counts are drawn uniformly from them per scene/object/part.

    Attributes:
        size: image size, ``S`` for S x S or ``(H, W)``.
        num_objects: how many objects a scene tries to place. Without occlusion an object that cannot be placed
            without touching the others is skipped, so a crowded scene can hold fewer.
        parts_per_object: parts per object (a body plus attached/embedded parts); parts tile their object.
        subparts_per_part: sub-parts drawn inside each part (they do not tile the part).
        object_scale: object body radius as a fraction of the image's shorter side.
        occlusion: objects may overlap (later ones on top; masks hold the visible pixels). When False, objects
            are kept at least 2 px apart.
        noise_sigma: standard deviation of the additive Gaussian pixel noise, in 0..255 intensity units.
        min_node_area: nodes with fewer visible pixels are dropped, with everything below them (1 keeps every node
            that has a visible pixel). A dropped part leaves its pixels to its object only.
        shape_classes: shape families allowed (subset of ``SHAPE_CLASSES``).
        texture_classes: texture families allowed (subset of ``TEXTURE_CLASSES``), background included.
    """

    size: int | tuple[int, int] = 256
    num_objects: tuple[int, int] = (1, 4)
    parts_per_object: tuple[int, int] = (2, 4)
    subparts_per_part: tuple[int, int] = (0, 3)
    object_scale: tuple[float, float] = (0.12, 0.28)
    occlusion: bool = True
    noise_sigma: float = 4.0
    min_node_area: int = 16
    shape_classes: tuple[str, ...] = SHAPE_CLASSES
    texture_classes: tuple[str, ...] = TEXTURE_CLASSES

    def __post_init__(self) -> None:
        if isinstance(self.size, list | tuple):
            self.size = tuple(int(v) for v in self.size)
            if len(self.size) != 2:
                raise InputError(f"SynthConfig.size must be an int or (H, W), got {self.size}")
        else:
            self.size = int(self.size)
        if min(self.hw) < 32:
            raise InputError(f"SynthConfig.size must be >= 32 px per side, got {self.size}")
        for name in ("num_objects", "parts_per_object", "subparts_per_part", "object_scale"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise InputError(
                    f"SynthConfig.{name} must be a (low, high) pair with low <= high, got {value}"
                )
            setattr(self, name, value)
        if self.num_objects[0] < 1 or self.parts_per_object[0] < 1 or self.subparts_per_part[0] < 0:
            raise InputError(
                "SynthConfig: need >= 1 object, >= 1 part per object and >= 0 sub-parts per part"
            )
        if not 0 < self.object_scale[0] <= self.object_scale[1] <= 1:
            raise InputError(f"SynthConfig.object_scale must lie in (0, 1], got {self.object_scale}")
        if self.min_node_area < 1:
            raise InputError(f"SynthConfig.min_node_area must be >= 1, got {self.min_node_area}")
        if self.noise_sigma < 0:
            raise InputError(f"SynthConfig.noise_sigma must be >= 0, got {self.noise_sigma}")
        self.shape_classes = _check_classes("shape_classes", self.shape_classes, SHAPE_CLASSES)
        self.texture_classes = _check_classes("texture_classes", self.texture_classes, TEXTURE_CLASSES)

    @property
    def hw(self) -> tuple[int, int]:
        """Image size as (H, W)."""
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)


def _check_classes(name: str, value: tuple[str, ...] | list[str], known: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if not value:
        raise InputError(f"SynthConfig.{name} must not be empty")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise InputError(f"SynthConfig.{name}: unknown class(es) {unknown}; known: {list(known)}")
    return value
