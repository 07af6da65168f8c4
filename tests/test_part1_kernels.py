"""Part 1's fast kernels, each held to the library call it stands for, and the shape measures
the reader and training share."""

from __future__ import annotations

import numpy as np
import pytest

import num_net


@pytest.mark.parametrize("shape", [(200, 200), (37, 91), (5, 300), (1, 1)])
def test_running_minimum_and_maximum_are_scipys(shape):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(sum(shape))
    page = rng.random(shape).astype(np.float32)
    for size in (1, 2, 3, 5, 8, 80, 81, 299, 400):  # even, odd, and longer than the page
        np.testing.assert_array_equal(num_net._closing(page, size), ndi.grey_closing(page, size=size))
        np.testing.assert_array_equal(num_net._opening(page, size), ndi.grey_opening(page, size=size))
        np.testing.assert_array_equal(num_net._opening(page > 0.6, size), ndi.grey_opening(page > 0.6, size=size))
        for axis in (0, 1):
            np.testing.assert_array_equal(num_net._running(page > 0.4, size, axis, np.maximum),
                                          ndi.maximum_filter1d(page > 0.4, size, axis=axis))
            np.testing.assert_array_equal(num_net._running(page, size, axis, np.minimum),
                                          ndi.minimum_filter1d(page, size, axis=axis))
            line = np.ones((size, 1) if axis == 0 else (1, size), bool)
            np.testing.assert_array_equal(num_net._closed_along(page > 0.6, size, axis),
                                          ndi.binary_closing(page > 0.6, line))
            np.testing.assert_array_equal(num_net.opened(page > 0.4, size, axis), ndi.maximum_filter1d(
                ndi.minimum_filter1d(page > 0.4, size, axis=axis), size, axis=axis))


@pytest.mark.parametrize("angle", [num_net.TTA_TILT, -num_net.TTA_TILT, 30.0])
def test_tilts_are_scipys_rotation(angle):
    from scipy import ndimage as ndi

    images = np.random.default_rng(0).random((20, 28, 28), dtype=np.float32)
    taps, weights = num_net.tilt_taps(angle)
    tilted = np.einsum("njk,jk->nj", images.reshape(20, -1)[:, taps], weights).reshape(images.shape)
    for image, mine in zip(images, tilted):
        np.testing.assert_allclose(mine, ndi.rotate(image, angle, reshape=False, order=1, prefilter=False), atol=1e-6)


def test_reading_variants_tilt_both_ways():
    digit = np.zeros((1, 28, 28), np.float32)
    digit[0, 4:24, 13:15] = 1  # an upright stroke
    variants = num_net.reading_variants(digit)
    left, right = variants[5][0], variants[6][0]
    top_left, top_right = (np.argwhere(v[4:8] > 0.5)[:, 1].mean() for v in (left, right))
    assert abs(top_left - top_right) >= 1.5  # the two tilts lean opposite ways: its top moves a pixel each way


def test_squared_axes_of_a_bar_are_its_sides_variances():
    bar = np.zeros((40, 50), bool)
    bar[5:8, 10:40] = True  # 3 pixels thick, 30 long, lying flat
    np.testing.assert_allclose(num_net.squared_axes(bar), [(3**2 - 1) / 12, (30**2 - 1) / 12])
    np.testing.assert_allclose(num_net.squared_axes(bar.T), [(3**2 - 1) / 12, (30**2 - 1) / 12])
    slash = np.eye(30, dtype=bool)  # leaning 45 degrees: all its length on one axis
    np.testing.assert_allclose(num_net.squared_axes(slash), [0, 2 * (30**2 - 1) / 12], atol=1e-9)


def test_mean_stroke_width_is_area_over_half_the_perimeter():
    assert num_net.mean_stroke_width(np.ones((10, 4), bool)) == 2 * 40 / (40 - 8 * 2)
