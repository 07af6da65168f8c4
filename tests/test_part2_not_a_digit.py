"""Tests for "not a digit": the network's flat answer on what is not a digit, and how predict and
draw show it. The model is the committed handwritten.keras, trained with outlier exposure."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

import num_net
from helpers.support import MODEL

# Share of each kind of generated non-digit (a stream training never saw) that must read as no
# digit; floors a little under what the committed model measures (README).
KIND_FLOORS = {"letters": 0.65, "words": 0.9, "scribbles": 0.3, "pieces": 0.15, "pairs": 0.65, "page_marks": 0.8}


# Share of letters and words written in handwriting fonts (font_letters.py: typefaces training never
# saw) that must read as no digit, a little under what the committed model measures (README).
FONT_FLOORS = {"letters": 0.24, "words": 0.16}


@pytest.fixture(scope="module")
def held_out(mnist_test):
    x, _ = mnist_test
    return num_net.non_digits(600, x, seed=1, held_out=True)


@pytest.mark.parametrize("kind", num_net.NOT_DIGIT_KINDS)
def test_each_kind_of_non_digit_reads_as_no_digit(kind, reader, held_out):
    images, kinds = held_out
    proba = num_net.read_proba(reader, images[kinds == num_net.NOT_DIGIT_KINDS.index(kind)])  # as predict reads
    rejected = float(np.mean(~num_net.is_digit(proba)))
    assert rejected >= KIND_FLOORS[kind], f"{kind}: {rejected:.0%} rejected"


def test_mnist_test_digits_are_rarely_rejected(reader, mnist_test):
    x, y = mnist_test
    proba = num_net.read_proba(reader, x)
    assert np.mean(~num_net.is_digit(proba)) <= 0.005
    for digit in range(10):  # no class pays for it more than the others
        assert np.mean(~num_net.is_digit(proba[y == digit])) <= 0.015, digit


def test_a_clear_digit_of_every_class_is_never_rejected(reader, mnist_test, tmp_path):
    from helpers import pages

    x, y = mnist_test
    rng = np.random.default_rng(5)
    files = []
    for digit in range(10):
        for k, i in enumerate(np.flatnonzero(y == digit)[:4]):
            path = tmp_path / f"{digit}_{k}.png"
            pages.render_page([x[i]], rng, dark_ink=True).save(path)
            files.append((path, digit))
    results, _ = num_net.predict_files(reader, [path for path, _ in files])
    assert [r for r in results if "error" in r] == []  # none turned away as no digit
    assert sum(r["digit"] == digit for r, (_, digit) in zip(results, files)) >= 38  # and nearly all as itself


def handwriting_fonts() -> list:
    """The handwriting fonts of font_letters.py: required in CI (.ci/run installs them)."""
    from helpers import font_letters

    fonts = font_letters.font_files()
    if not fonts and os.environ.get("CI"):
        pytest.fail(f"CI must run the handwriting-font test: apt-get install {' '.join(font_letters.FONT_PACKAGES)}")
    if not fonts:
        pytest.skip("apt-get install the handwriting fonts that tests/font_letters.py names to run this test")
    return fonts


def test_letters_and_words_in_handwriting_fonts_read_as_no_digit_and_their_digits_as_digits(reader):
    from helpers import font_letters

    fonts, rng = handwriting_fonts(), np.random.default_rng(1)
    for kind, floor in FONT_FLOORS.items():
        read = font_letters.answers(num_net, reader, font_letters.SETS[kind], fonts, 1, rng)
        assert np.mean(["error" in answer for _, answer in read]) >= floor, kind
    read = font_letters.answers(num_net, reader, font_letters.SETS["digits"], fonts, 1, rng)
    assert np.mean(["error" in answer for _, answer in read]) <= 0.02  # measured 0.4%
    assert np.mean([answer.get("digit") == int(text) for text, answer in read]) >= 0.92  # measured 95.4%


def letters_page(text_strokes) -> Image.Image:
    """Pen strokes (lists of points in a 100x100 box) side by side on white paper."""
    img = Image.new("L", (140 * len(text_strokes) + 40, 180), 255)
    draw = ImageDraw.Draw(img)
    for n, strokes in enumerate(text_strokes):
        for points in strokes:
            draw.line([(40 + 140 * n + x, 40 + y) for x, y in points], fill=20, width=7, joint="curve")
    return img


LETTER_A = [[(0, 100), (40, 0), (80, 100)], [(18, 60), (62, 60)]]
LETTER_K = [[(0, 0), (0, 100)], [(70, 0), (5, 55)], [(25, 40), (75, 100)]]


def test_handwritten_letters_are_no_digit(tmp_path, capsys):
    paths = []
    # An H drawn this way still reads as a 4 at 39%, above the threshold (noted on the issue).
    for name, strokes in (("A", LETTER_A), ("K", LETTER_K)):
        letters_page([strokes]).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    code = num_net.main(["predict", *paths, "--model", str(MODEL), "--out-dir", str(tmp_path / "out"), "--no-show"])
    out, err = capsys.readouterr()
    assert code == 1 and out.strip() == f"saved {tmp_path / 'out' / 'predict.png'}"  # no answer, only the picture
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all("no digit found" in line and "none of them a digit" in line for line in errors)


LETTER_L = [[(0, 0), (0, 100)]]  # an l, which alone is a 1
LETTER_O = [[(30 + 30 * np.cos(t), 60 + 40 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]]  # an o, a 0


def word_page(letters, lefts) -> Image.Image:
    """Pen letters (strokes in a 100x100 box) written as one word: each starting at its `left`."""
    img = Image.new("L", (lefts[-1] + 180, 180), 255)
    draw = ImageDraw.Draw(img)
    for strokes, left in zip(letters, lefts):
        for points in strokes:
            draw.line([(40 + left + x, 40 + y) for x, y in points], fill=20, width=7, joint="curve")
    return img


def test_the_l_and_o_of_a_word_are_letters_too(reader, tmp_path):
    word_page([LETTER_A, LETTER_K, LETTER_L, LETTER_O], [0, 115, 225, 260]).save(tmp_path / "word.png")
    reading = num_net.surest_readings(reader, [num_net.read_digits(tmp_path / "word.png")])[0]
    assert num_net.is_digit(reading.proba).sum() >= 1  # the network alone reads a digit in it
    assert "no digit found" in num_net.json_answer(reading)["error"]


def test_a_number_a_word_space_after_a_word_is_still_read(reader, mnist_test, tmp_path):
    from helpers import pages

    x, _ = mnist_test
    word = np.asarray(letters_page([LETTER_A, LETTER_K]), np.float32) / 255
    ink = pages.strip([pages.glyph(x[i], 100) for i in range(3)], 30)  # 7 2 1
    page = np.ones((180, word.shape[1] + 60 + ink.shape[1] + 40), np.float32)
    page[:, : word.shape[1]] = word
    page[40:140, word.shape[1] + 60 : word.shape[1] + 60 + ink.shape[1]] -= ink * 0.9
    reading = num_net.surest_readings(reader, [num_net.read_page(page, "word and number")])[0]
    result = num_net.json_answer(reading)
    assert result["number"] == "721" and len(result["ignored"]) == 2


def test_a_letter_beside_digits_is_left_out_of_the_number(reader, mnist_test, tmp_path):
    from helpers import pages

    x, y = mnist_test
    digits = [x[i] for i in range(3)]  # 7 2 1
    ink = pages.strip([pages.glyph(d, 100) for d in digits], 30)
    page = np.zeros((220, ink.shape[1] + 240), np.float32)
    page[60:160, 40 : 40 + ink.shape[1]] = ink
    img = Image.fromarray((255 - page * 235).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    left = ink.shape[1] + 100
    for points in LETTER_K:
        draw.line([(left + px, 60 + py) for px, py in points], fill=20, width=8)
    img.save(tmp_path / "number_and_letter.png")
    results, reads = num_net.predict_files(reader, [tmp_path / "number_and_letter.png"])
    assert results[0]["number"] == "721"
    assert len(results[0]["ignored"]) == 1 and len(results[0]["ignored"][0]["probabilities"]) == 10
    sheet = np.asarray(num_net.predict_sheet(reads))
    grey = (sheet[..., 0] == 150) & (sheet[..., 1] == 150) & (sheet[..., 2] == 150)
    assert grey.sum() > 100  # the ignored blob's grey box


def test_json_keeps_the_probabilities_of_a_rejected_file(tmp_path, capsys):
    letters_page([LETTER_A]).save(tmp_path / "A.png")
    num_net.main(["predict", str(tmp_path / "A.png"), "--json", "--model", str(MODEL), "--out-dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)[0]
    assert "no digit found" in result["error"]
    probabilities = result["not_a_digit"][0]["probabilities"]
    assert len(probabilities) == 10 and max(probabilities) < num_net.NOT_A_DIGIT


def test_draw_says_not_a_digit_and_keeps_the_bars(reader):
    import io

    plt = num_net.pyplot(show=False)
    pad = num_net.DrawPad(plt, reader, out=io.StringIO())
    try:
        scale = num_net.DrawPad.SIZE / 180
        for points in LETTER_A:
            pad.last = None
            for px, py in points:
                pad.paint(40 * scale + px * scale * 1.6, 20 * scale + py * scale * 1.6)
        pad.refresh()
        assert pad.answer_text.get_text() == "not a digit"
        assert max(bar.get_height() for bar in pad.bars) > 0
        assert pad.summary().startswith("digit=none (not a digit")
    finally:
        plt.close(pad.fig)
