"""The public API resolves lazily and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import granseg


def test_every_public_name_resolves():
    for name in granseg.__all__:
        assert getattr(granseg, name) is not None, name
    assert granseg.Predictor is granseg.UnSAMv2Predictor


def test_import_is_light():
    code = (
        "import sys, granseg; print(sorted(m for m in ('torch', 'transformers', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
