"""Tests for `predict`: MNIST-style preprocessing of your own images, and the command around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import num_net
from helpers import pages
from helpers.support import MODEL, drawn_digit


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


def test_a_second_look_takes_a_lamps_spot_and_dark_corners_for_paper():
    rows, cols = np.mgrid[0:300, 0:450] / np.float32(450)
    spot = 0.15 * np.exp(-((rows - 0.3) ** 2 + (cols - 0.5) ** 2) / (2 * 0.08**2))
    corners = 0.5 * ((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2) / 0.5
    page = np.clip(0.85 * (1 + spot - corners), 0, 1).astype(np.float32)  # blank paper, unevenly lit
    second = num_net.Look(num_net.CHOICE.narrow_window, curved_light=True)
    assert num_net.ink_map(page, second)[0].max() < num_net.INK.min_contrast / 2
    assert num_net.find_digits(page, second) == []
    drawn = np.minimum(page, drawn_digit(size=(450, 300)))  # and a digit drawn on it is still found
    assert len(num_net.find_digits(drawn, second)) == 1


def test_blank_and_nearly_blank_pages_have_no_digit():
    rng = np.random.default_rng(0)
    assert num_net.preprocess(np.ones((200, 300), np.float32)) == []
    noisy = np.clip(0.9 + rng.normal(0, 0.01, (200, 300)), 0, 1).astype(np.float32)
    assert num_net.preprocess(noisy) == []


@pytest.mark.parametrize("shape", [(1, 1), (1, 900), (900, 2), (5, 5)])
def test_degenerate_pages_have_no_digit_and_raise_no_warning(shape, recwarn):
    assert num_net.preprocess(np.zeros(shape, np.float32)) == []
    assert num_net.preprocess(np.ones(shape, np.float32)) == []
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def ruled_page(width=600, height=400) -> Image.Image:
    """White paper with thin gray ruled lines across it, every 60 pixels."""
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    for row in range(30, height, 60):
        draw.line([(0, row), (width, row)], fill=150, width=2)
    return img


def test_ruled_lines_and_an_underline_are_not_digits():
    img = ruled_page()
    draw = ImageDraw.Draw(img)
    draw.line([(300, 100), (290, 208)], fill=0, width=8)  # a 1 sitting on the rule at 210
    draw.line([(250, 222), (360, 226)], fill=0, width=5)  # underlined
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert [len(line) for line in found] == [1]
    top, bottom, left, right = found[0][0].box
    assert 95 <= top and bottom <= 215 and 280 <= left and right <= 310


def test_a_page_edge_and_a_scanner_band_are_not_digits():
    img = Image.new("L", (300, 400), 235)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 90, 400], fill=10)  # the black band where the page ends
    draw.line([(200, 150), (195, 260)], fill=0, width=9)
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert len(found) == 1 and len(found[0]) == 1
    assert found[0][0].box[2] > 150


def test_only_a_page_edge_is_no_digit():
    img = Image.new("L", (400, 300), 60)
    ImageDraw.Draw(img).polygon([(80, 0), (400, 0), (400, 300), (110, 300)], fill=230)  # a sheet on a table
    assert num_net.find_digits(np.asarray(img, np.float32) / 255) == []


def test_a_bold_digit_cropped_tight_keeps_solid_strokes():
    img = Image.new("L", (96, 96), 255)
    ImageDraw.Draw(img).ellipse([0, 0, 95, 95], outline=0, width=20)  # a bold 0 touching all four edges
    digits = num_net.preprocess(np.asarray(img, np.float32) / 255)
    assert len(digits) == 1
    ring = digits[0] > 127
    assert ring[14, :].sum() >= 5  # the stroke is solid across its width, not two thin outlines
    assert not ring[12:16, 12:16].any()  # and the hole stays a hole


def test_a_box_around_a_number_is_not_read():
    img = Image.new("L", (400, 200), 255)
    draw = ImageDraw.Draw(img)
    for x in (120, 230):
        draw.ellipse([x, 60, x + 55, 140], outline=0, width=9)
    draw.rectangle([90, 35, 315, 165], outline=0, width=6)
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert [len(line) for line in found] == [2]


def test_a_slanted_one_taller_than_the_digit_beside_it_is_no_frame_side():
    img = Image.new("L", (340, 200), 255)
    draw = ImageDraw.Draw(img)
    draw.line([(110, 40), (80, 160)], fill=0, width=8)  # a 1 written as a slash, reaching above and below the 0
    draw.ellipse([140, 70, 185, 135], outline=0, width=8)
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert [len(line) for line in found] == [2]


@pytest.mark.parametrize("first, gap, number", [(80, -4, "76"), (142, -8, "31")])
def test_touching_digits_a_little_wider_than_tall_are_read_apart(first, gap, number, mnist_test, model):
    x, y = mnist_test
    ink = pages.strip([pages.glyph(x[first], 100), pages.glyph(x[first + 1], 100)], gap)
    assert 1.1 <= ink.shape[1] / ink.shape[0] <= 1.2  # too narrow for the rule that cuts wide blobs
    page = np.zeros((ink.shape[0] + 80, ink.shape[1] + 80), np.float32)
    page[40:-40, 40:-40] = ink
    reading = num_net.surest_readings(model, [num_net.read_page(1 - 0.85 * page, "pair")])[0]
    assert num_net.json_answer(reading)["number"] == number == f"{y[first]}{y[first + 1]}"


def test_slanted_digits_touching_are_cut_along_their_slant():
    mask = np.zeros((100, 110), bool)
    rows, cols = np.ogrid[0:100, 0:110]
    lean = 50 + 0.4 * (50 - rows)  # two strokes leaning right, overlapping in every middle column
    first, second = (np.abs(cols - lean - shift) <= 3 for shift in (0, 22))
    mask |= first | second
    mask[92:, 30:55] = True  # joined at the foot, as a pen runs on from one 1 to the next
    blob = num_net.Blob(frozenset([1]), 0, 100, 0, 110, int(mask.sum()))
    assert num_net.cut_in_two(blob, mask, 100.0) is None  # no upright cut passes between them
    left, right = num_net.slanted_cut(blob, mask, 100.0)
    assert (left | right).sum() == mask.sum() and not (left & right).any()
    assert left[:90][first[:90]].all() and right[:90][second[:90]].all()


def test_touching_digits_are_cut_apart():
    img = Image.new("L", (400, 200), 255)
    draw = ImageDraw.Draw(img)
    draw.ellipse([100, 50, 170, 150], outline=0, width=10)
    draw.line([(168, 100), (240, 50)], fill=0, width=10)  # a 1 whose flag runs into the 0
    draw.line([(240, 50), (240, 150)], fill=0, width=10)
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert [len(line) for line in found] == [2]


def test_lines_of_writing_are_read_top_to_bottom():
    img = Image.new("L", (400, 300), 255)
    draw = ImageDraw.Draw(img)
    for row in (40, 170):
        for x in (80, 200):
            draw.ellipse([x, row, x + 50, row + 80], outline=0, width=8)
    found = num_net.find_digits(np.asarray(img, np.float32) / 255)
    assert [len(line) for line in found] == [2, 2]
    assert found[0][0].box[0] < found[1][0].box[0]


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
    as_json = capsys.readouterr()
    results = json.loads(as_json.out)
    assert len(as_json.out.strip().splitlines()) == len(results) + 2  # "[", one object a line, "]"
    assert as_json.err.strip().splitlines()[-1] == f"saved {out / 'predict.png'}"  # stdout stays pure JSON
    assert [Path(r["file"]).name for r in results] == ["a_gray.png", "b_color.jpg", "c_drawing.png", "d_blank.png",
                                                       "e_corrupt.jpg"]
    good, bad = results[:3], results[3:]
    assert printed.out.strip().splitlines() == [*(num_net.format_prediction(r) for r in good),
                                                f"saved {out / 'predict.png'}"]
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


def test_rerendered_test_digits_are_read_correctly(mnist_test, tmp_path):
    x, y = mnist_test
    written = pages.write_pages(x, y, tmp_path, count=120, seed=1)
    model = num_net.load_model(MODEL)
    results, _ = num_net.predict_files(model, [path for path, _ in written])
    correct = sum(r.get("digit") == label for r, (_, label) in zip(results, written))
    assert correct / len(written) >= 0.93  # measured 97.3% on 300 such pages (README)


# Each real-page case, rendered from MNIST test digits with known answers (tests/pages.py), must
# keep its accuracy; floors sit a little under what `python tests/pages.py --case all` measures.
CASE_FLOORS = {"page_edge": 0.76, "ruled": 0.88, "boxed": 0.68, "touching": 0.76, "small_number": 0.7,
               "two_lines": 0.72, "bold_tight": 0.92, "faint_pencil": 0.64, "shadow": 0.72, "uneven_light": 0.52,
               "shrunk": 0.88, "two_strokes": 0.88, "border_strip": 0.76, "sixteen_bit": 0.84}


@pytest.mark.parametrize("case", list(pages.CASES))
def test_real_page_case_is_read(case, mnist_test, model, tmp_path):
    x, y = mnist_test
    count = 10 if case == "small_number" else 25  # 12-megapixel photos take a while to render
    written = pages.write_case(case, x, y, tmp_path, count, seed=1)
    results, _ = num_net.predict_files(model, [path for path, _ in written])
    right = sum(pages.read_lines(result) == lines for result, (_, lines) in zip(results, written))
    assert right / count >= CASE_FLOORS[case], f"{case}: {right}/{count}"


def test_two_lines_give_number_and_lines(mnist_test, model, tmp_path):
    x, y = mnist_test
    path, lines = pages.write_case("two_lines", x, y, tmp_path, 1, seed=3)[0]
    results, reads = num_net.predict_files(model, [path])
    assert results[0]["lines"] == lines and results[0]["number"] == lines[0]
    assert len(results[0]["digits"]) == sum(len(line) for line in lines)
    sheet = np.asarray(num_net.predict_sheet(reads))
    assert ((sheet[..., 0] > 200) & (sheet[..., 1] < 80)).sum() > 50  # red boxes drawn on the original


def handwriting_folder(name: str) -> Path:
    """A folder of real handwriting from NUMNET_HANDWRITING: required in CI, skipped elsewhere."""
    import os

    value = os.environ.get("NUMNET_HANDWRITING")
    if value and (Path(value) / name).is_dir():
        return Path(value) / name
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the real-handwriting tests: NUMNET_HANDWRITING={value!r} has no {name}/")
    pytest.skip("set NUMNET_HANDWRITING to ../shared/handwriting to run the real-handwriting tests")


# Floors a little under the committed model's measured figures (README), above the issue targets.
@pytest.mark.parametrize("name, floor", [("registers", 0.64), ("usps", 0.93), ("ru_gridscan", 0.92)])
def test_real_handwriting_from_outside_mnist(name, floor, model):
    files = num_net.image_files([handwriting_folder(name)])
    results, _ = num_net.predict_files(model, files)
    right = sum(str(r.get("number", r.get("digit"))) == f.name.split("_")[0] for r, f in zip(results, files))
    assert right / len(files) >= floor, f"{name}: {right}/{len(files)}"


def test_a_handwritten_number_is_read_left_to_right(mnist_test, tmp_path):
    x, y = mnist_test
    path = tmp_path / "number.png"
    pages.render_page([x[i] for i in range(4)], np.random.default_rng(3)).save(path)  # test digits 7 2 1 0
    results, _ = num_net.predict_files(num_net.load_model(MODEL), [path])
    assert results[0]["number"] == "7210"
    assert [d["digit"] for d in results[0]["digits"]] == [7, 2, 1, 0]


# ---------------------------------------------------------------- images as phones and scanners save them


def seven_page() -> np.ndarray:
    """A 7 drawn on white paper, as floats in [0, 1]."""
    img = Image.new("L", (100, 120), 255)
    ImageDraw.Draw(img).line([(20, 25), (80, 25), (45, 100)], fill=40, width=9)
    return np.asarray(img, np.float32) / 255


def banded_page(strip_at: int) -> np.ndarray:
    """A 7 on a scan with a black band down its left side and a thin straight stroke standing
    `strip_at` pixels right of the band, as floats in [0, 1]."""
    img = Image.new("L", (300, 200), 230)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 39, 199), fill=15)
    draw.line([(40 + strip_at, 60), (40 + strip_at, 130)], fill=90, width=2)
    draw.line([(150, 70), (200, 70), (170, 140)], fill=40, width=7)
    return np.asarray(img, np.float32) / 255


def test_a_straight_stroke_beside_a_band_is_its_shaded_edge_and_a_1_further_off_is_read():
    reader = num_net.load_reader(MODEL)
    assert pages.read_lines(num_net.read_array(reader, banded_page(5), "edge")[1]) == ["7"]  # was read "17"
    assert pages.read_lines(num_net.read_array(reader, banded_page(40), "one")[1]) == ["17"]


def test_a_16_bit_scan_is_read_at_its_own_contrast(tmp_path):
    scan = (0.25 + 0.67 * seven_page()) * 65535  # paper at 60,000 of 65,535: 8-bit conversion clipped it all to white
    for suffix in (".png", ".tif"):
        path = tmp_path / f"seven{suffix}"
        Image.fromarray(scan.astype(np.uint16)).save(path)
        assert Image.open(path).mode == "I;16"
        gray = num_net.load_image(path)
        assert 0.3 < gray.min() < 0.4 and 0.9 < gray.max() < 0.95
        results, _ = num_net.predict_files(num_net.load_reader(MODEL), [path])
        assert results[0].get("digit") == 7, results[0]


def test_a_phone_photo_is_turned_as_its_exif_orientation_says(tmp_path):
    sideways = np.rot90((seven_page() * 255).astype(np.uint8))  # the camera held on its side...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... says the picture is to be turned a quarter clockwise
    Image.fromarray(np.ascontiguousarray(sideways)).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    assert num_net.load_image(tmp_path / "photo.jpg").shape == seven_page().shape
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), [tmp_path / "photo.jpg"])
    assert results[0].get("digit") == 7, results[0]


def test_an_iphone_heic_photo_is_read(tmp_path):
    from pillow_heif import register_heif_opener

    register_heif_opener()
    path = tmp_path / "IMG_0001.HEIC"
    Image.fromarray((seven_page() * 255).astype(np.uint8)).convert("RGB").save(path, format="HEIF")
    assert path in num_net.image_files([tmp_path])
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), [path])
    assert results[0].get("digit") == 7, results[0]


# Two 4s written in two strokes that do not touch: an open corner and its stem. The second is a 4
# as Russian school hands write it, the stem well clear of the corner and hanging lower, the two
# together wider than either piece is tall; read as two pieces, it is "61".
@pytest.mark.parametrize("size, corner, stem", [
    ((260, 270), [(100, 30), (45, 140), (150, 140)], [(170, 60), (150, 240)]),
    ((300, 300), [(80, 30), (40, 160), (190, 160)], [(230, 70), (215, 270)]),
], ids=["upright", "wide"])
def test_a_four_in_two_strokes_is_one_digit(tmp_path, size, corner, stem):
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    draw.line(corner, fill=30, width=12)
    draw.line(stem, fill=30, width=12)
    img.save(tmp_path / "four.png")
    read = num_net.read_digits(tmp_path / "four.png")
    assert [len(line) for line in read.lines] == [2] and read.lines[0][0].with_next is not None
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), [tmp_path / "four.png"])
    assert results[0].get("digit") == 4, results[0]


def test_a_digit_sized_picture_is_read_whole(tmp_path):
    # A bold 9 filling a 28x28 photo, its stem running off the bottom edge: as a page, the stem is a
    # rule across 80% of it and a stroke cut by the border; as one digit's picture, it is a 9.
    img = Image.new("L", (112, 112), 255)
    draw = ImageDraw.Draw(img)
    draw.ellipse((30, 6, 82, 52), outline=0, width=12)
    draw.line([(76, 30), (70, 112)], fill=0, width=12)
    img.resize((28, 28), Image.Resampling.LANCZOS).save(tmp_path / "nine.png")
    read = num_net.read_digits(tmp_path / "nine.png")
    assert read.whole is not None or len(read.lines[0]) == 1
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), [tmp_path / "nine.png"])
    assert results[0].get("digit") == 9, results[0]


def test_an_unsure_page_is_read_again_narrower_and_the_surer_reading_kept(mnist_test, tmp_path):
    x, y = mnist_test
    written = pages.write_case("uneven_light", x, y, tmp_path, 8, seed=1)
    reader = num_net.load_reader(MODEL)
    first = num_net.chosen_readings(reader, [num_net.read_digits(path) for path, _ in written])
    assert any(num_net.unsure(reading) for reading in first)  # vignettes and light patches are taken for ink
    final = num_net.surest_readings(reader, [num_net.read_digits(path) for path, _ in written])
    assert all(num_net.sureness(b) >= num_net.sureness(a) for a, b in zip(first, final))
    assert sum(num_net.sureness(b) > num_net.sureness(a) for a, b in zip(first, final)) >= 2


def test_predict_png_draws_a_file_read_again_and_a_picture_from_memory(tmp_path):
    path = tmp_path / "7_seven.png"
    Image.fromarray((seven_page() * 255).astype(np.uint8)).save(path)
    reading = num_net.read_digits(path)
    assert reading.gray is None and reading.size == (120, 100)  # a worker sends back no page
    drawn = np.asarray(reading.picture())
    np.testing.assert_array_equal(drawn, num_net.thumbnail(num_net.load_image(path), reading.scale))
    assert drawn.min() < 100  # the 7 itself
    path.unlink()  # gone before predict.png is drawn: a blank page in its place, no error
    assert np.asarray(reading.picture()).min() == 255
    from_memory, _ = num_net.read_array(num_net.load_reader(MODEL), seven_page(), "drawn")
    assert np.asarray(from_memory.picture()).min() < 100


def test_predict_png_lays_a_folder_out_in_a_grid_and_scales_small_originals_up(tmp_path):
    for n in range(9):
        Image.fromarray((seven_page() * 255).astype(np.uint8)).resize((28, 34)).save(tmp_path / f"{n}_seven.png")
    _, reads = num_net.predict_files(num_net.load_reader(MODEL), num_net.image_files([tmp_path]))
    sheet = num_net.predict_sheet(reads)
    assert sheet.width > sheet.height  # 4 across, 3 down: not one column 2,000 pixels tall
    assert sheet.height < 3 * (num_net.SHEET_PAGE[1] + 180)  # a title and two rows of captioned inputs a page
    page, zoom = num_net.sheet_page(reads[0])
    assert zoom == 5 and page.size == (28 * 5, 34 * 5)  # a 28-pixel original drawn 140 pixels wide, pixels kept


def test_predict_png_says_when_it_shows_part_of_a_folder_and_its_captions_are_readable(tmp_path):
    from PIL import ImageFont

    for n in range(num_net.PREDICT_SHOWN + 4):
        Image.fromarray((seven_page() * 255).astype(np.uint8)).save(tmp_path / f"7_{n:02d}.png")
    _, reads = num_net.predict_files(num_net.load_reader(MODEL), num_net.image_files([tmp_path]))
    header = np.asarray(num_net.predict_sheet(reads, len(reads)).convert("L"))[:24]
    assert header.min() < 100  # "the first 36 of 40 images read" above the grid
    assert num_net.predict_sheet(reads[:4], 4).height < num_net.predict_sheet(reads[:4], 40).height  # no line when all show
    left, top, right, bottom = ImageFont.load_default(size=num_net.SHEET_CAPTION).getbbox("7 100%")
    assert bottom - top >= 10  # a caption's digits at least 10 pixels tall at the saved size


def test_a_folders_mistakes_figure_shows_true_and_read(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray((seven_page() * 255).astype(np.uint8)).save(folder / "1_not_a_one.png")  # a 7 labelled 1
    code = num_net.main(["evaluate", "--images", str(folder), "--model", str(MODEL), "--out-dir", str(tmp_path / "out"),
                         "--no-show"])
    assert code == 0
    _, reads = num_net.predict_files(num_net.load_reader(MODEL), [folder / "1_not_a_one.png"])
    with_truth = np.asarray(num_net.predict_sheet(reads, 1, {str(folder / "1_not_a_one.png"): "1"}).convert("L"))
    without = np.asarray(num_net.predict_sheet(reads, 1).convert("L"))
    assert (with_truth[:22] != without[:22]).any()  # the title line says "true 1, read 7"
    assert (tmp_path / "out" / "mistakes_mine.png").exists()
