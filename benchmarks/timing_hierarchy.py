"""Speed of the `hierarchy` predictor at 1024 px next to one cv2.grabCut `predict` in the same process.

OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/timing_hierarchy.py [FIELD=VALUE ...]
"""

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from granseg.eval.baselines import build_grabcut_baseline
from granseg.io.images import load_image
from granseg.predict.hierarchy import build_hierarchy

img = load_image(Path(__file__).resolve().parents[2] / "shared/data/grabcut/data_GT/flower.jpg")
s = 1024 / max(img.shape[:2])
img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)

over = dict(kv.split("=") for kv in sys.argv[1:])
over = {k: (v == "true") if v in ("true", "false") else float(v) for k, v in over.items()}
p = build_hierarchy(**over).create_predictor()
t = []
for _ in range(3):
    a = time.perf_counter()
    p.set_image(img)
    t.append(time.perf_counter() - a)
print("set_image", np.median(t))
h, w = img.shape[:2]
rng = np.random.default_rng(0)
for name, fn in [
    ("1click g1", lambda q: p.predict(q[:1], [1], granularity=1.0)),
    ("1click all", lambda q: p.predict(q[:1], [1], granularity="all")),
    ("3click g1", lambda q: p.predict(q[:3], [1, 0, 1], granularity=1.0)),
    ("3click all", lambda q: p.predict(q[:3], [1, 0, 1], granularity="all")),
]:
    ts = []
    for _ in range(30):
        q = rng.uniform([0, 0], [w - 1, h - 1], size=(3, 2))
        a = time.perf_counter()
        fn(q)
        ts.append(time.perf_counter() - a)
    print(name, "ms", 1000 * np.median(ts))
b = build_grabcut_baseline().create_predictor()
b.set_image(img)
ts = []
for _ in range(5):
    q = rng.uniform([0, 0], [w - 1, h - 1], size=(3, 2))
    a = time.perf_counter()
    b.predict(q[:1], [1], granularity=1.0)
    ts.append(time.perf_counter() - a)
print("grabcut-baseline predict ms (reference)", 1000 * np.median(ts))
