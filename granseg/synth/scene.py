"""A generated scene: the image plus its node hierarchy (objects -> parts -> sub-parts) with exact masks.

Masks are H x W bool and hold the VISIBLE pixels of a node (after occlusion by later objects). Children lie inside
their parent, siblings are disjoint, objects are disjoint. Node ids are >= 1 (0 is background in label maps).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from granseg.errors import InputError
from granseg.io.files import atomic_write_bytes, atomic_write_json
from granseg.io.masks import decode_rle, masks_to_records
from granseg.synth.config import LEVELS, SynthConfig


@dataclasses.dataclass(eq=False)
class SceneNode:
    """One node of a scene hierarchy.

    Attributes:
        id: node id, >= 1, unique within the scene.
        parent: parent node id; None for objects.
        level: "object", "part" or "subpart".
        object_id: id of the object this node belongs to (its own id for an object).
        mask: H x W bool, the node's visible pixels.
        granularity: UnSAMv2 granularity within its object hierarchy (see granseg.regions.granularity), in [0.1, 1].
        shape: shape family the node was drawn with (see SHAPE_CLASSES).
        texture: texture family of the node's own pixels ("" for objects: they show their parts' textures).
        visible_fraction: visible pixels / pixels drawn for the node (< 1 when later objects occlude it).
    """

    id: int
    parent: int | None
    level: str
    object_id: int
    mask: np.ndarray
    granularity: float
    shape: str
    texture: str
    visible_fraction: float = 1.0

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def point_inside(self, rng: np.random.Generator | None = None) -> tuple[float, float]:
        """(x, y) px of a pixel of this node: the one farthest from its boundary, or a random one given ``rng``."""
        if rng is not None:
            ys, xs = np.nonzero(self.mask)
            pick = int(rng.integers(len(xs)))
            return float(xs[pick]), float(ys[pick])
        import cv2

        distance = cv2.distanceTransform(np.pad(self.mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        return float(x), float(y)


@dataclasses.dataclass(eq=False)
class Scene:
    """A synthetic image with its exact hierarchy.

    Attributes:
        image: H x W x 3 uint8 RGB.
        nodes: nodes in id order (an object, then its parts, each followed by its sub-parts).
        seed: the seed it was generated from.
        config: the generator configuration.
    """

    image: np.ndarray
    nodes: list[SceneNode]
    seed: int
    config: SynthConfig

    def __post_init__(self) -> None:
        self._by_id = {node.id: node for node in self.nodes}

    @property
    def hw(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def node(self, node_id: int) -> SceneNode:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"scene {self.seed} has no node {node_id}") from None

    def objects(self) -> list[SceneNode]:
        return [node for node in self.nodes if node.level == "object"]

    def children(self, node_id: int) -> list[SceneNode]:
        return [node for node in self.nodes if node.parent == node_id]

    def own_mask(self, node_id: int) -> np.ndarray:
        """H x W bool: pixels of ``node_id`` that none of its children covers (e.g. where a click selects the
        part itself rather than one of its sub-parts)."""
        own = self.node(node_id).mask.copy()
        for child in self.children(node_id):
            own &= ~child.mask
        return own

    def descendants(self, node_id: int) -> list[SceneNode]:
        """All nodes below ``node_id`` (children, grandchildren, ...) in id order."""
        below, frontier = [], [node_id]
        while frontier:
            kids = [n for n in self.nodes if n.parent in frontier]
            below.extend(kids)
            frontier = [n.id for n in kids]
        return sorted(below, key=lambda n: n.id)

    def hierarchy(self, object_id: int) -> list[SceneNode]:
        """The object node followed by all of its descendants."""
        return [self.node(object_id), *self.descendants(object_id)]

    def level_nodes(self, level: str) -> list[SceneNode]:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; known: {list(LEVELS)}")
        return [node for node in self.nodes if node.level == level]

    def label_map(self, level: str) -> np.ndarray:
        """H x W int32 map of the ids of the nodes of ``level`` (0 where no node of that level is visible)."""
        labels = np.zeros(self.hw, dtype=np.int32)
        for node in self.level_nodes(level):
            labels[node.mask] = node.id
        return labels

    def node_at(self, x: float, y: float, level: str) -> SceneNode | None:
        """The node of ``level`` covering pixel (x, y), or None."""
        row, col = int(round(y)), int(round(x))
        if not (0 <= row < self.hw[0] and 0 <= col < self.hw[1]):
            return None
        for node in self.level_nodes(level):
            if node.mask[row, col]:
                return node
        return None

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON record per node (granseg.io.masks.masks_to_records format: COCO RLE ``segmentation``, ``area``,
        ``bbox``, ``score`` = 1, ``granularity``) plus ``id``, ``parent``, ``level``, ``object_id``, ``shape``,
        ``texture``, ``visible_fraction``."""
        if not self.nodes:
            return []
        extra = [
            {
                "id": n.id,
                "parent": n.parent,
                "level": n.level,
                "object_id": n.object_id,
                "shape": n.shape,
                "texture": n.texture,
                "visible_fraction": round(n.visible_fraction, 4),
            }
            for n in self.nodes
        ]
        return masks_to_records(
            np.stack([n.mask for n in self.nodes]),
            scores=[1.0] * len(self.nodes),
            granularity=[n.granularity for n in self.nodes],
            extra=extra,
        )


def save_scene(scene: Scene, directory: str | Path, name: str | None = None) -> tuple[Path, Path]:
    """Write ``<name>.png`` (the image) and ``<name>.json`` (seed, size, config, node records) into ``directory``.

    ``name`` defaults to ``scene_<seed>``. Writes are atomic. Returns (image path, JSON path).
    """
    from PIL import Image

    directory = Path(directory)
    name = name or f"scene_{scene.seed:06d}"
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG")
    image_path = atomic_write_bytes(directory / f"{name}.png", buffer.getvalue())
    document = {
        "image": image_path.name,
        "seed": scene.seed,
        "height": scene.hw[0],
        "width": scene.hw[1],
        "config": scene.config.to_dict(),
        "nodes": scene.to_records(),
    }
    json_path = atomic_write_json(directory / f"{name}.json", document)
    return image_path, json_path


def load_scene(json_path: str | Path) -> Scene:
    """Read a scene written by :func:`save_scene` (image decoded from the PNG next to the JSON)."""
    from granseg.io.images import load_image

    json_path = Path(json_path)
    try:
        document = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read scene file {json_path}: {exc}") from exc
    image = load_image(json_path.parent / document["image"])
    nodes = [
        SceneNode(
            id=int(r["id"]),
            parent=None if r["parent"] is None else int(r["parent"]),
            level=r["level"],
            object_id=int(r["object_id"]),
            mask=decode_rle(r["segmentation"]).astype(bool),
            granularity=float(r["granularity"]),
            shape=r["shape"],
            texture=r["texture"],
            visible_fraction=float(r.get("visible_fraction", 1.0)),
        )
        for r in document["nodes"]
    ]
    return Scene(
        image=image, nodes=nodes, seed=int(document["seed"]), config=SynthConfig.from_dict(document["config"])
    )
