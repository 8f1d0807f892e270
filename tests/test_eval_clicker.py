"""RITM clicker: where the next click goes, ignore regions, click counts."""

from __future__ import annotations

import numpy as np
from eval_helpers import square

from granseg.eval.clicker import Click, Clicker, iou, next_click, number_of_clicks

# ----------------------------------------------------------------------------------------------- clicker


def test_first_click_is_the_interior_maximum():
    gt = square(20, 20, 2, 9, 2, 9)  # 7 x 7, centre (5, 5) at distance 4
    assert next_click(gt, np.zeros_like(gt)) == Click(True, 5, 5)


def test_negative_click_goes_to_the_first_row_major_maximum_of_the_false_positives():
    gt = square(20, 20, 2, 9, 2, 9)
    pred = gt | square(
        20, 20, 12, 17, 12, 19
    )  # 5 x 7 false-positive block: distance 3 on row 14, cols 14..16
    assert next_click(gt, pred) == Click(False, 14, 14)


def test_tie_between_errors_gives_a_negative_click():
    gt = square(20, 20, 0, 20, 0, 10)
    pred = square(20, 20, 0, 20, 0, 10)
    pred[2:7, 2:7] = False  # 5 x 5 false negative
    pred[12:17, 12:17] = True  # 5 x 5 false positive
    click = next_click(gt, pred)
    assert not click.is_positive and (click.y, click.x) == (14, 14)


def test_image_border_counts_as_outside_the_error_region():
    gt = square(
        10, 10, 0, 10, 0, 5
    )  # touches three borders; with 1-px padding the max distance is 3 at (2, 2)
    assert next_click(gt, np.zeros_like(gt)) == Click(True, 2, 2)


def test_clicked_pixels_are_excluded():
    gt = square(20, 20, 2, 9, 2, 9)
    not_clicked = np.ones_like(gt)
    not_clicked[5, 5] = False
    assert next_click(gt, np.zeros_like(gt), not_clicked) == Click(True, 4, 4)


def test_known_click_sequence_on_two_blobs():
    gt = square(30, 30, 2, 9, 2, 9) | square(30, 30, 18, 27, 18, 27)  # 7x7 and 9x9 blobs
    clicker = Clicker(gt)
    first = clicker.make_next_click(np.zeros_like(gt))
    assert first == Click(True, 22, 22)  # the bigger blob first (distance 5)
    second = clicker.make_next_click(square(30, 30, 18, 27, 18, 27))
    assert second == Click(True, 5, 5)
    third = clicker.make_next_click(gt | square(30, 30, 0, 1, 20, 30))  # a thin strip of false positive
    assert third.is_positive is False and third.y == 0
    np.testing.assert_array_equal(clicker.points_xy(), [[22, 22], [5, 5], [third.x, 0]])
    np.testing.assert_array_equal(clicker.labels(), [1, 1, 0])


def test_ignore_region_is_excluded_from_errors_and_iou():
    gt = square(20, 20, 5, 15, 5, 15)
    ignore = square(20, 20, 3, 17, 3, 17) & ~square(20, 20, 7, 13, 7, 13)  # a band around the boundary
    pred = square(20, 20, 4, 16, 4, 16)  # wrong only inside the band
    assert iou(gt, pred, ignore) == 1.0
    assert iou(gt, pred) < 1.0
    # the only error would be in the band, so with ignore the "click" lands where both maps are 0
    free = next_click(gt, pred | square(20, 20, 0, 2, 0, 2), ignore_mask=ignore)
    assert not free.is_positive and (free.y, free.x) == (0, 0)


def test_number_of_clicks():
    assert number_of_clicks([0.5, 0.86, 0.91], 0.85) == 2
    assert number_of_clicks([0.5, 0.86, 0.91], 0.9) == 3
    assert number_of_clicks([0.5, 0.6], 0.9, max_clicks=20) == 20
