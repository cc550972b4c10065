"""Readings of the entropy measurement (issue 12, part 4): known histograms, scopes, pixel sets, bases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nps.analysis import record_from_maps
from nps.analysis.entropy import (
    entropy_map,
    histogram_entropy,
    record_entropies,
    sliding_entropy,
    window_entropy,
)
from nps.analysis.entropy_readings import (
    PAPER,
    Reading,
    admits_paper,
    closest,
    counted_pixels,
    readings,
    scope_entropy,
)
from nps.errors import NPSError


def test_histogram_entropy_known_values_and_bases():
    rows = np.array([[1, 1, 2, 2], [1, 2, 3, 4], [5, 5, 5, 5], [7, 8, 9, 9]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], bool)
    np.testing.assert_allclose(histogram_entropy(rows, mask), [1.0, 2.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(histogram_entropy(rows[:2], mask[:2], math.e), [math.log(2), math.log(4)], atol=1e-12)
    np.testing.assert_allclose(histogram_entropy(rows[:2], mask[:2], 10.0), [math.log10(2), math.log10(4)],
                               atol=1e-12)
    # counts (3, 1): -(3/4 log2 3/4 + 1/4 log2 1/4)
    want = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert histogram_entropy(np.array([[4, 4, 9, 4]]), np.ones((1, 4), bool))[0] == pytest.approx(want, abs=1e-12)
    assert np.isnan(histogram_entropy(rows[:1], np.zeros((1, 4), bool))[0])


@pytest.mark.parametrize("w", [1, 3, 5, 7])
def test_inside_windows_match_todays_measurement(w, rng):
    maps = rng.integers(0, 6, (9, 12, 12))
    valid = rng.random(maps.shape) > 0.25
    np.testing.assert_allclose(sliding_entropy(maps, w, valid), window_entropy(maps, w, valid), atol=1e-12,
                               equal_nan=True)


def test_centred_windows_clip_at_the_border_and_match_inside():
    # 4x4 map of four 2x2 quadrants with ids 0, 1 / 2, 3
    q = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])[None]
    ent = sliding_entropy(q, 3, centred=True)
    assert ent.shape == (1, 4, 4)
    assert ent[0, 0, 0] == 0.0  # the clipped 2x2 corner window holds one quadrant
    assert ent[0, 0, 1] == pytest.approx(-(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3)))  # 4 of id 0, 2 of 1
    p = np.array([4, 2, 2, 1]) / 9  # window rows 0..2, cols 0..2
    assert ent[0, 1, 1] == pytest.approx(-(p * np.log2(p)).sum())
    inside = entropy_map(q, 3)
    ok = ~np.isnan(inside)
    np.testing.assert_allclose(ent[ok], inside[ok], atol=1e-12)


def test_whole_canvas_position_and_batch_scopes():
    q = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    maps = np.stack([q, q + 10])
    counted = np.ones(maps.shape, bool)
    np.testing.assert_allclose(scope_entropy(maps, counted, "image"), [2.0, 2.0])  # four equal quadrants
    np.testing.assert_allclose(scope_entropy(maps, counted, "position"), np.ones(16))  # two samples differ everywhere
    np.testing.assert_allclose(scope_entropy(maps, counted, "batch"), [3.0])  # eight equal ids
    with pytest.raises(NPSError, match="needs a window"):
        scope_entropy(maps, counted, "window")
    with pytest.raises(NPSError, match="unknown"):
        scope_entropy(maps, counted, "galaxy")


def _record():
    """Two 8x8 samples: left half from train image 0 (ink), right half from image 1 (black); labels 3 and 5."""
    train = np.zeros((4, 8, 8), np.uint8)
    train[0] = 200
    src = np.zeros((2, 8, 8), np.int64)
    src[:, :, 4:] = 1
    src[1, :2, :2] = 2  # a third source in sample 1's corner (black, label 3)
    return record_from_maps(src, train, np.array([3, 5, 3, 5]), seed_size=2)


def test_counted_pixel_sets():
    rec = _record()
    assert counted_pixels(rec, "all").all()
    ink = counted_pixels(rec, "ink")
    assert ink[:, :, :4].sum() == 2 * 32 - 4 and not ink[:, :, 4:].any()  # image 0 is ink, except sample 1's corner
    gen = counted_pixels(rec, "generated")
    assert (~gen).sum() == 2 * 4 and not gen[:, 3:5, 3:5].any()  # the 2x2 seed box is shell 0
    with pytest.raises(NPSError, match="pixel set"):
        counted_pixels(rec, "edges")


def test_readings_agree_with_record_entropies_and_convert_bases():
    rec = _record()
    rows = readings(rec, windows=(3, 5), bases=("2", "e", "10"))
    today = record_entropies(rec, 5)
    by = {(r.scope, r.window, r.pixels, r.base): r for r in rows}
    t = by[("window", 5, "all", "2")]
    assert t.class_h == pytest.approx(today["class"].mean, abs=1e-12)
    assert t.image_id_h == pytest.approx(today["image_id"].mean, abs=1e-12)
    e = by[("window", 5, "all", "e")]
    assert e.class_h == pytest.approx(t.class_h * math.log(2)) and e.ratio == pytest.approx(t.ratio)
    assert by[("image", None, "all", "10")].image_id_h == pytest.approx(
        np.mean([1.0, -(28 / 64 * math.log2(28 / 64) + 4 / 64 * math.log2(4 / 64) + 0.5 * math.log2(0.5))])
        / math.log2(10))
    assert by[("image", None, "ink", "2")].image_id_h == 0.0  # ink comes from image 0 only
    assert len(rows) == 3 * 3 * (2 + 2 + 3)  # pixels x bases x (2 windows x 2 scopes + 3 whole-canvas scopes)
    with pytest.raises(NPSError, match="log base"):
        readings(rec, bases=("3",))


def test_distance_and_closest():
    exact = Reading("window", 5, "all", "2", *PAPER, 0.0, 0.0)
    off = Reading("image", None, "all", "2", 2 * PAPER[0], PAPER[1], 0.0, 0.0)
    assert exact.distance == 0.0 and off.distance == pytest.approx(1.0)
    assert closest([off, exact], 1) == [exact]
    assert Reading("batch", None, "all", "2", 0.0, 1.0, 0, 0).ratio == math.inf


def test_the_paper_class_entropy_is_impossible_in_base_10_for_ten_classes():
    assert admits_paper("2", 10) and admits_paper("e", 10) and not admits_paper("10", 10)
    assert not admits_paper("2", 2)  # two classes: at most 1 bit
    uniform10 = histogram_entropy(np.arange(10)[None], np.ones((1, 10), bool), 10.0)[0]
    assert uniform10 == pytest.approx(1.0) and uniform10 < PAPER[0]  # the most a 10-class histogram reaches
