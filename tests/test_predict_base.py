from __future__ import annotations

import numpy as np
import pytest

from granseg.errors import InputError
from granseg.predict.base import GRANULARITY_LEVELS, parse_granularity, validate_prompts


def test_parse_granularity_forms():
    np.testing.assert_allclose(parse_granularity(0.3), [0.3])
    np.testing.assert_allclose(parse_granularity("0.2,0.8"), [0.2, 0.8])
    np.testing.assert_allclose(parse_granularity([1, 0.1]), [1.0, 0.1])
    np.testing.assert_allclose(parse_granularity("ALL"), GRANULARITY_LEVELS)
    for bad in ("0.05", "0.2,x", 1.01, [], float("nan")):
        with pytest.raises(InputError):
            parse_granularity(bad)


def test_validate_prompts():
    points, labels, box = validate_prompts([[1, 2]], None, None, height=10, width=20)
    assert points.shape == (1, 2) and labels.tolist() == [1] and box is None
    with pytest.raises(InputError, match="outside"):
        validate_prompts([[20, 2]], None, None, height=10, width=20)
    with pytest.raises(InputError, match="labels"):
        validate_prompts([[1, 2]], [1, 0], None, height=10, width=20)
    with pytest.raises(InputError, match="positive"):
        validate_prompts([[1, 2]], [0], None, height=10, width=20)
    with pytest.raises(InputError, match="x1 > x0"):
        validate_prompts(None, None, [5, 5, 2, 8], height=10, width=20)
    with pytest.raises(InputError, match="at least one point"):
        validate_prompts(None, None, None, height=10, width=20)
