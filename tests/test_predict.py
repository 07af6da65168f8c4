"""Tests for `predict`: MNIST-style preprocessing of your own images, and the command around it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import num_net

sys.path.insert(0, str(Path(__file__).parent))
import pages  # noqa: E402  (the page renderer beside this file)
from test_num_net import ROOT, real_data_path  # noqa: E402

MODEL = ROOT / "handwritten.keras"


def drawn_digit(size=(300, 200), box=(120, 40, 160, 170), dark_ink=True, width=12) -> np.ndarray:
    """A page with a '1'-like bar and a foot, as grayscale floats (1 = white)."""
    paper, ink = (255, 0) if dark_ink else (0, 255)
    img = Image.new("L", size, paper)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = box
    draw.line([(right, top), (left + 10, bottom)], fill=ink, width=width)
    draw.line([(left - 10, bottom), (right + 10, bottom)], fill=ink, width=width)
    return np.asarray(img, np.float32) / 255


# ---------------------------------------------------------------- preprocessing, no TensorFlow


def test_polarity_is_decided_so_ink_is_bright():
    dark_on_light = num_net.preprocess(drawn_digit(dark_ink=True))
    light_on_dark = num_net.preprocess(drawn_digit(dark_ink=False))
    assert len(dark_on_light) == len(light_on_dark) == 1
    for digit in (dark_on_light[0], light_on_dark[0]):
        assert digit.dtype == np.uint8 and digit.shape == (28, 28)
        assert digit[0].max() == 0 and digit[:, 0].max() == 0  # black border, bright ink
        assert digit.max() == 255
    assert np.abs(dark_on_light[0].astype(int) - light_on_dark[0].astype(int)).mean() < 8


def test_digit_is_fit_to_20x20_and_centred_by_mass():
    digit = num_net.preprocess(drawn_digit(box=(40, 20, 90, 60)))[0].astype(float)
    rows, cols = np.flatnonzero(digit.sum(axis=1)), np.flatnonzero(digit.sum(axis=0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20
    r, c = np.indices(digit.shape)
    com = ((r * digit).sum() / digit.sum(), (c * digit).sum() / digit.sum())
    assert abs(com[0] - 13.5) <= 1 and abs(com[1] - 13.5) <= 1


def test_same_digit_anywhere_and_any_size_gives_same_input():
    small = num_net.preprocess(drawn_digit(size=(300, 200), box=(30, 20, 60, 120), width=8))[0]
    large = num_net.preprocess(drawn_digit(size=(900, 700), box=(500, 200, 620, 590), width=24))[0]
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 12


def test_uneven_lighting_is_removed():
    page = drawn_digit()
    shaded = np.clip(page * np.linspace(0.45, 1.0, page.shape[1])[None, :], 0, 1)  # dark left edge
    assert len(num_net.preprocess(shaded)) == 1
    np.testing.assert_allclose(num_net.preprocess(shaded)[0], num_net.preprocess(page)[0], atol=80)


def test_blank_and_nearly_blank_pages_have_no_digit():
    rng = np.random.default_rng(0)
    assert num_net.preprocess(np.ones((200, 300), np.float32)) == []
    noisy = np.clip(0.9 + rng.normal(0, 0.01, (200, 300)), 0, 1).astype(np.float32)
    assert num_net.preprocess(noisy) == []


def test_several_digits_are_split_left_to_right():
    img = Image.new("L", (400, 150), 255)
    draw = ImageDraw.Draw(img)
    for x in (50, 170, 290):
        draw.ellipse([x, 30, x + 60, 120], outline=0, width=10)
    digits = num_net.preprocess(np.asarray(img, np.float32) / 255)
    assert len(digits) == 3


# ---------------------------------------------------------------- the command


@pytest.fixture
def image_folder(tmp_path):
    """Three good files (PNG gray, JPEG color, RGBA drawing), a blank page and a corrupt file."""
    page = (drawn_digit() * 255).astype(np.uint8)
    Image.fromarray(page).save(tmp_path / "a_gray.png")
    Image.fromarray(page).convert("RGB").save(tmp_path / "b_color.jpg", quality=80)
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[..., 3] = 255 - page  # ink drawn in the alpha channel, transparent paper
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c_drawing.png")
    Image.new("L", (200, 200), 255).save(tmp_path / "d_blank.png")
    (tmp_path / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return tmp_path


def test_predict_prints_and_json_agree(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(image_folder), "--model", str(MODEL), "--out-dir", str(out), "--no-show"]
    assert num_net.main(args) == 1  # the blank and the corrupt file fail
    printed = capsys.readouterr()
    assert num_net.main([*args, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in results] == ["a_gray.png", "b_color.jpg", "c_drawing.png", "d_blank.png",
                                                       "e_corrupt.jpg"]
    good, bad = results[:3], results[3:]
    assert printed.out.strip().splitlines() == [num_net.format_prediction(r) for r in good]
    for r in good:
        assert r["digit"] == 1 and r["top"][0] == [1, r["confidence"]] and len(r["top"]) == 3
    assert "no digit found" in bad[0]["error"] and "not a readable image" in bad[1]["error"]
    errors = printed.err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("num_net: error:") for line in errors)
    assert (out / "predict.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_all_good_exits_zero_and_missing_model_is_clear(image_folder, tmp_path, capsys):
    good = str(image_folder / "a_gray.png")
    assert num_net.main(["predict", good, "--model", str(MODEL), "--out-dir", str(tmp_path), "--no-show"]) == 0
    missing = tmp_path / "nope.keras"
    assert num_net.main(["predict", good, "--model", str(missing), "--out-dir", str(tmp_path), "--no-show"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_small_thin_digit_on_a_big_shaded_photo_is_found():
    page = drawn_digit(size=(3000, 2000), box=(1400, 800, 1460, 1000), width=7)  # 1/10 of the height
    shaded = page * np.linspace(0.6, 1.0, page.shape[1], dtype=np.float32)[None, :]
    from PIL import Image as PILImage

    small = PILImage.fromarray((shaded * 255).astype(np.uint8))
    small.thumbnail((num_net.WORK_SIDE, num_net.WORK_SIDE), PILImage.Resampling.BOX)  # as load_image does
    digits = num_net.preprocess(np.asarray(small, np.float32) / 255)
    assert len(digits) == 1
    assert digits[0].max() == 255 and (digits[0] > 127).sum() >= 20  # strokes thickened, not lost


def test_thin_pen_digit_is_read(tmp_path):
    path = tmp_path / "thin.png"
    Image.fromarray((drawn_digit(width=3) * 255).astype(np.uint8)).save(path)
    results, _ = num_net.predict_files(num_net.load_model(MODEL), [path])
    assert results[0]["digit"] == 1


def test_huge_photo_is_downscaled_early(tmp_path):
    page = Image.fromarray((drawn_digit(size=(4000, 3000), box=(1800, 800, 2300, 2300), width=90) * 255)
                           .astype(np.uint8)).convert("RGB")
    page.save(tmp_path / "photo.jpg", quality=85)
    gray = num_net.load_image(tmp_path / "photo.jpg")
    assert max(gray.shape) <= num_net.WORK_SIDE
    assert len(num_net.preprocess(gray)) == 1


# ---------------------------------------------------------------- accuracy on re-rendered MNIST test digits


@pytest.fixture(scope="module")
def mnist_test():
    with np.load(real_data_path(), allow_pickle=False) as npz:
        return npz["x_test"], npz["y_test"]


def test_rerendered_test_digits_are_read_correctly(mnist_test, tmp_path):
    x, y = mnist_test
    written = pages.write_pages(x, y, tmp_path, count=120, seed=1)
    model = num_net.load_model(MODEL)
    results, _ = num_net.predict_files(model, [path for path, _ in written])
    correct = sum(r.get("digit") == label for r, (_, label) in zip(results, written))
    assert correct / len(written) >= 0.93  # measured 97.3% on 300 such pages (README)


def test_a_handwritten_number_is_read_left_to_right(mnist_test, tmp_path):
    x, y = mnist_test
    path = tmp_path / "number.png"
    pages.render_page([x[i] for i in range(4)], np.random.default_rng(3)).save(path)  # test digits 7 2 1 0
    results, _ = num_net.predict_files(num_net.load_model(MODEL), [path])
    assert results[0]["number"] == "7210"
    assert [d["digit"] for d in results[0]["digits"]] == [7, 2, 1, 0]
