"""Procedural synthetic world with an exact hierarchy (scene -> objects -> parts -> sub-parts).

>>> from granseg.synth import SynthConfig, generate_scene
>>> scene = generate_scene(seed=0, config=SynthConfig(size=128))
>>> scene.image.shape
(128, 128, 3)
"""

from granseg.synth.config import LEVELS, SHAPE_CLASSES, TEXTURE_CLASSES, SynthConfig
from granseg.synth.generator import generate_scene, generate_scenes
from granseg.synth.scene import Scene, SceneNode, load_scene, save_scene

__all__ = [
    "LEVELS",
    "SHAPE_CLASSES",
    "TEXTURE_CLASSES",
    "Scene",
    "SceneNode",
    "SynthConfig",
    "generate_scene",
    "generate_scenes",
    "load_scene",
    "save_scene",
]
