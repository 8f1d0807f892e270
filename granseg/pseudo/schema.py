"""JSON Schema (draft 2020-12) of one pseudo-label file written by :mod:`granseg.pseudo.pipeline`."""

from __future__ import annotations

RLE_SCHEMA = {
    "type": "object",
    "required": ["size", "counts"],
    "properties": {
        "size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
        "counts": {"type": "string"},
    },
}

ANNOTATION_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "segmentation",
        "area",
        "bbox",
        "score",
        "granularity",
        "point_coords",
        "instance_id",
        "is_part",
        "is_divide",
        "is_conquer",
    ],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "segmentation": RLE_SCHEMA,
        "area": {"type": "integer", "minimum": 1},
        "bbox": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 4, "maxItems": 4},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "granularity": {"type": "number", "minimum": 0.1, "maximum": 1.0},
        "point_coords": {"type": "array"},
        "instance_id": {"type": "integer", "minimum": 1},
        "is_part": {"type": "boolean"},
        "is_divide": {"type": "boolean"},
        "is_conquer": {"type": "boolean"},
        "is_stuff": {"type": "boolean"},  # optional: a region no instance covers (stuff pass), and its parts
    },
}

PSEUDO_LABEL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["image", "annotations"],
    "properties": {
        "image": {
            "type": "object",
            "required": ["file_name", "height", "width"],
            "properties": {
                "file_name": {"type": "string"},
                "height": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
            },
        },
        "annotations": {"type": "array", "items": ANNOTATION_SCHEMA},
    },
}
