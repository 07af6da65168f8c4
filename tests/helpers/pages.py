"""Re-rendered MNIST digits that look like a user's own photos, scans and pages, for tests and measurement.

    python tests/helpers/pages.py --data ../shared/mnist/mnist.npz --count 500 OUT_DIR

writes OUT_DIR/NNNN_label-D.(png|jpg): test digits scaled up to 40-220 px, drawn with MNIST's
stroke or a thinner pen, placed at random on a page up to six times larger, dark-on-light or
light-on-dark, on an uneven (gradient) background with noise and blur, in gray or tinted color,
saved as JPEG or PNG. Then

    python num_net.py predict OUT_DIR --json --no-show

and compare each file's `digit` with the label in its name; or let this script do it:

    python tests/helpers/pages.py --data ../shared/mnist/mnist.npz --count 300 --check handwritten.keras OUT_DIR

prints the accuracy and the preprocessing + prediction speed (model already loaded).

`--case NAME` writes real-page cases instead (files `NNNN_<number>.png`, lines joined by "-"):
page_edge, ruled, boxed, touching, small_number, two_lines, bold_tight, faint_pencil, shadow,
uneven_light, shrunk, two_strokes, border_strip, sixteen_bit (see CASES);
`--case all` writes every case into its own subfolder, and `--check` scores each by name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def crop_digit(digit: np.ndarray) -> np.ndarray:
    """The inked part of an MNIST image (white on black, uint8)."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def glyph(digit: np.ndarray, height: int, pen: int = 0) -> np.ndarray:
    """One MNIST digit as ink (floats, 1 = ink) `height` pixels tall; pen > 0 thins the stroke."""
    crop = Image.fromarray(crop_digit(digit))
    width = max(2, round(crop.width * height / crop.height))
    img = crop.resize((width, height), Image.Resampling.BICUBIC)
    for _ in range(pen * height // 60):
        img = img.filter(ImageFilter.MinFilter(3))
    return np.asarray(img, np.float32) / 255


def strip(glyphs: list[np.ndarray], gap: int) -> np.ndarray:
    """Glyphs side by side, `gap` pixels apart (a negative gap makes them overlap)."""
    height = max(g.shape[0] for g in glyphs)
    width = sum(g.shape[1] for g in glyphs) + gap * (len(glyphs) - 1)
    ink = np.zeros((height, max(width, max(g.shape[1] for g in glyphs))), np.float32)
    left = 0
    for g in glyphs:
        region = ink[: g.shape[0], left : left + g.shape[1]]
        np.maximum(region, g[:, : region.shape[1]], out=region)
        left += g.shape[1] + gap
    return ink


def photograph(ink: np.ndarray, rng: np.random.Generator, dark_ink: bool | None = None,
               contrast: float | None = None, backdrop: np.ndarray | None = None) -> Image.Image:
    """Ink (floats, 1 = ink) as a photographed page: paper and pen shades, gradient lighting,
    noise, blur, maybe a tint. `backdrop`, where given (floats, 1 = off the paper), is a dark
    surface beside the page."""
    page_h, page_w = ink.shape
    yy, xx = (axis / np.float32(max(page_h, page_w)) for axis in np.ogrid[0:page_h, 0:page_w])
    angle = rng.uniform(0, 2 * np.pi)
    gradient = ((np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0.1, 0.35)).astype(np.float32)
    dark_ink = bool(rng.integers(2)) if dark_ink is None else dark_ink
    if dark_ink:
        paper = rng.uniform(0.65, 0.95) - gradient
        pen = paper - contrast if contrast is not None else rng.uniform(0.05, 0.3)
    else:
        paper, pen = rng.uniform(0.05, 0.25) + gradient, rng.uniform(0.75, 1.0)
    page = paper * (1 - ink) + pen * ink
    if backdrop is not None:
        page = page * (1 - backdrop) + rng.uniform(0.05, 0.25) * backdrop
    page = page + rng.standard_normal(ink.shape, np.float32) * np.float32(rng.uniform(0.01, 0.04))
    img = Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    if rng.integers(2):  # a colour photo: tinted paper and ink
        tint = rng.uniform(0.75, 1.0, 3)
        rgb = np.asarray(img, np.float32)[..., None] * tint
        img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    return img


def place(line: np.ndarray, page_h: int, page_w: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """A page of ink with `line` at a random place; returns it and the line's top-left corner."""
    ink = np.zeros((page_h, page_w), np.float32)
    top = int(rng.integers(0, page_h - line.shape[0] + 1))
    left = int(rng.integers(0, page_w - line.shape[1] + 1))
    ink[top : top + line.shape[0], left : left + line.shape[1]] = line
    return ink, top, left


def render_page(digits: list[np.ndarray], rng: np.random.Generator, dark_ink: bool | None = None) -> Image.Image:
    """Draw MNIST digits (28x28 uint8, white on black) left to right on a photographed-looking page."""
    height = int(rng.integers(40, 220))
    pen = int(rng.integers(0, 3))  # 0: MNIST's own stroke width; 1, 2: thinner pens
    line = strip([glyph(d, height, pen) for d in digits], int(height * rng.uniform(0.15, 0.4)))
    page_h = int(height * rng.uniform(1.3, 6.0))
    page_w = int(max(line.shape[1] * rng.uniform(1.2, 4.0), page_h * rng.uniform(0.7, 1.5)))
    ink, _, _ = place(line, page_h, page_w, rng)
    return photograph(ink, rng, dark_ink)


def write_pages(x: np.ndarray, y: np.ndarray, out: Path, count: int, seed: int = 0) -> list[tuple[Path, int]]:
    """Save `count` single-digit pages, half JPEG and half PNG; return (path, label) pairs."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, i in enumerate(rng.choice(len(x), count, replace=False)):
        img = render_page([x[i]], rng)
        if n % 2:
            path = out / f"{n:04d}_label-{y[i]}.jpg"
            img.save(path, quality=int(rng.integers(60, 95)))
        else:
            path = out / f"{n:04d}_label-{y[i]}.png"
            img.save(path)
        written.append((path, int(y[i])))
    return written


# ---------------------------------------------------------------- real-page cases


def number(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, low: int, high: int) -> tuple[list, str]:
    """A random number of low..high MNIST test digits: the images and the digits as text."""
    picks = rng.choice(len(x), int(rng.integers(low, high + 1)), replace=False)
    return [x[i] for i in picks], "".join(str(y[i]) for i in picks)


def written_line(digits: list, height: int, rng: np.random.Generator, pen: int = 0, spacing=(0.2, 0.4)) -> np.ndarray:
    return strip([glyph(d, height, pen) for d in digits], int(height * rng.uniform(*spacing)))


def written_number(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, count: tuple[int, int],
                   heights: tuple[int, int]) -> tuple[np.ndarray, str, int]:
    """A number of `count` (least, most) test digits written at a random height in `heights`: its
    line of ink, its text and the height."""
    digits, text = number(x, y, rng, *count)
    height = int(rng.integers(*heights))
    return written_line(digits, height, rng), text, height


def pen_line(ink: np.ndarray, points, width: int) -> None:
    """Draw a straight pen stroke into an ink array (in place)."""
    img = Image.fromarray((ink * 255).astype(np.uint8))
    ImageDraw.Draw(img).line(points, fill=255, width=width)
    ink[:] = np.asarray(img, np.float32) / 255


def case_page_edge(x, y, rng):
    """A number on a sheet that ends inside the photo: a dark table, with the sheet's shadow,
    beside or below it (the edge a little tilted)."""
    line, text, height = written_number(x, y, rng, (1, 4), (40, 100))
    page_h, page_w = int(height * rng.uniform(4, 7)), int(max(line.shape[1] * 2.5, height * rng.uniform(4, 7)))
    yy, xx = np.mgrid[0:page_h, 0:page_w]
    side = int(rng.integers(4))  # the table shows at the left, right, top or bottom
    depth, across, size = [(xx, yy, page_w), (page_w - 1 - xx, yy, page_w), (yy, xx, page_h), (page_h - 1 - yy, xx, page_h)][side]
    edge = rng.uniform(0.12, 0.3) * size + rng.uniform(-0.08, 0.08) * (across - across.mean())
    backdrop = np.clip((edge - depth) / 3 + 0.5, 0, 1).astype(np.float32)
    shadow = np.clip(1 - (depth - edge) / (0.03 * size), 0, 1) * (depth >= edge) * rng.uniform(0.2, 0.5)
    ink = np.zeros((page_h, page_w), np.float32)
    while True:  # somewhere on the sheet, clear of its edge
        top = int(rng.integers(0, page_h - line.shape[0] + 1))
        left = int(rng.integers(0, page_w - line.shape[1] + 1))
        if not backdrop[top : top + line.shape[0], left : left + line.shape[1]].any() and \
                depth[top : top + line.shape[0], left : left + line.shape[1]].min() > edge.max() + 0.05 * size:
            break
    ink[top : top + line.shape[0], left : left + line.shape[1]] = line
    img = np.asarray(photograph(ink, rng, dark_ink=True, backdrop=backdrop), np.float32)
    shade = 1 - (shadow[..., None] if img.ndim == 3 else shadow)
    return Image.fromarray((img * shade).astype(np.uint8)), [text]


def case_ruled(x, y, rng):
    """A number written on ruled paper, sitting on a line, and underlined."""
    line, text, height = written_number(x, y, rng, (2, 5), (40, 90))
    page_h, page_w = int(height * rng.uniform(4, 6)), int(line.shape[1] * rng.uniform(1.6, 2.5))
    ink, top, left = place(line, page_h, page_w, rng)
    rule = max(1, height // 30)
    spacing = int(height * rng.uniform(1.3, 1.7))
    for row in range(top + line.shape[0] + rule, -spacing, -spacing):  # the number sits on a rule
        if 0 <= row < page_h:
            ink[row : row + rule] = np.maximum(ink[row : row + rule], 0.6)
    for row in range(top + line.shape[0] + rule + spacing, page_h, spacing):
        ink[row : row + rule] = np.maximum(ink[row : row + rule], 0.6)
    under = top + line.shape[0] + int(height * rng.uniform(0.05, 0.2))
    slope = rng.uniform(-0.05, 0.05) * line.shape[1]
    pen_line(ink, [(left - 5, under), (left + line.shape[1] + 5, under + slope)], max(2, height // 15))
    return photograph(ink, rng, dark_ink=True), [text]


def case_boxed(x, y, rng):
    """A number with a box drawn around it."""
    line, text, height = written_number(x, y, rng, (2, 5), (40, 90))
    page_h, page_w = int(height * rng.uniform(2.5, 4)), int(line.shape[1] * rng.uniform(1.5, 2.2))
    ink = np.zeros((page_h, page_w), np.float32)
    top, left = (page_h - line.shape[0]) // 2, (page_w - line.shape[1]) // 2
    ink[top : top + line.shape[0], left : left + line.shape[1]] = line
    pad = int(height * rng.uniform(0.2, 0.45))
    img = Image.fromarray((ink * 255).astype(np.uint8))
    box = (left - pad, top - pad, left + line.shape[1] + pad, top + line.shape[0] + pad)
    ImageDraw.Draw(img).rectangle(box, outline=255, width=max(2, height // 15))
    return photograph(np.asarray(img, np.float32) / 255, rng, dark_ink=True), [text]


def case_touching(x, y, rng):
    """A number whose digits touch or overlap a little."""
    digits, text = number(x, y, rng, 2, 4)
    height = int(rng.integers(40, 120))
    line = written_line(digits, height, rng, spacing=(-0.08, 0.0))
    page_h, page_w = int(height * rng.uniform(1.5, 3)), int(line.shape[1] * rng.uniform(1.3, 2))
    return photograph(place(line, page_h, page_w, rng)[0], rng), [text]


def case_small_number(x, y, rng):
    """A 3-7 digit number written small on a big photo: under 1% of its pixels."""
    digits, text = number(x, y, rng, 3, 7)
    page_w = int(rng.integers(2400, 4000))
    height = int(page_w * rng.uniform(0.025, 0.04))
    line = written_line(digits, height, rng, pen=int(rng.integers(0, 2)))
    return photograph(place(line, page_w * 3 // 4, page_w, rng)[0], rng), [text]


def case_two_lines(x, y, rng):
    """Two numbers, one written under the other."""
    (first, a), (second, b) = number(x, y, rng, 2, 6), number(x, y, rng, 2, 6)
    height = int(rng.integers(40, 90))
    lines = [written_line(first, height, rng), written_line(second, height, rng)]
    gap = int(height * rng.uniform(0.4, 0.9))
    width = max(l.shape[1] for l in lines) + height
    block = np.zeros((2 * height + gap, width), np.float32)
    for row, l in zip((0, height + gap), lines):
        shift = int(rng.integers(0, width - l.shape[1] + 1))
        block[row : row + l.shape[0], shift : shift + l.shape[1]] = l
    page_h, page_w = int(block.shape[0] * rng.uniform(1.3, 2.5)), int(width * rng.uniform(1.2, 2))
    return photograph(place(block, page_h, page_w, rng)[0], rng), [a, b]


def case_bold_tight(x, y, rng):
    """A single digit in a bold marker, cropped with no margin at all."""
    digits, text = number(x, y, rng, 1, 1)
    height = int(rng.integers(60, 160))
    ink = Image.fromarray((glyph(digits[0], height) * 255).astype(np.uint8))
    ink = ink.filter(ImageFilter.MaxFilter(2 * (height // 40) + 1))
    ink = np.asarray(ink, np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.3), np.flatnonzero(ink.max(axis=0) > 0.3)
    return photograph(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], rng, dark_ink=True), [text]


def case_faint_pencil(x, y, rng):
    """A number in faint, thin pencil."""
    digits, text = number(x, y, rng, 1, 4)
    height = int(rng.integers(50, 150))
    line = written_line(digits, height, rng, pen=int(rng.integers(1, 3)))
    page_h, page_w = int(height * rng.uniform(1.5, 4)), int(line.shape[1] * rng.uniform(1.3, 3))
    return photograph(place(line, page_h, page_w, rng)[0], rng, dark_ink=True, contrast=rng.uniform(0.12, 0.25)), [text]


def case_shadow(x, y, rng):
    """A number above a hand's or a phone's shadow: a darker region with a sharp, wavy edge across
    the lower part of the page."""
    line, text, height = written_number(x, y, rng, (3, 10), (30, 70))
    page_w = int(line.shape[1] * rng.uniform(1.2, 1.6))
    page_h = int(max(height * rng.uniform(4, 7), page_w * rng.uniform(0.5, 0.9)))
    ink = np.zeros((page_h, page_w), np.float32)
    top, left = int(rng.uniform(0.1, 0.3) * page_h), int(rng.integers(0, page_w - line.shape[1] + 1))
    ink[top : top + line.shape[0], left : left + line.shape[1]] = line
    img = np.asarray(photograph(ink, rng, dark_ink=True), np.float32)
    xx = np.arange(page_w)
    edge = top + line.shape[0] + height * rng.uniform(0.5, 1.5) + height * 0.4 * np.sin(xx / (page_w * rng.uniform(0.1, 0.4)))
    shade = np.where(np.arange(page_h)[:, None] > edge[None, :], rng.uniform(0.4, 0.7), 1.0).astype(np.float32)
    shade = np.asarray(Image.fromarray((shade * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2))),
                       np.float32) / 255
    return Image.fromarray((img * (shade[..., None] if img.ndim == 3 else shade)).astype(np.uint8)), [text]


def case_uneven_light(x, y, rng):
    """Faint pencil under strong uneven light: a bright spot (a lamp, a flash) and dark corners."""
    digits, text = number(x, y, rng, 1, 5)
    height = int(rng.integers(40, 100))
    line = written_line(digits, height, rng, pen=int(rng.integers(0, 2)))
    page_h, page_w = int(height * rng.uniform(2.5, 4)), int(line.shape[1] * rng.uniform(1.4, 2.2))
    ink = place(line, page_h, page_w, rng)[0]
    img = np.asarray(photograph(ink, rng, dark_ink=True, contrast=rng.uniform(0.12, 0.2)), np.float32) / 255
    yy, xx = np.mgrid[0:page_h, 0:page_w] / np.float32(max(page_h, page_w))
    cy, cx = rng.uniform(0.2, 0.8) * page_h / max(page_h, page_w), rng.uniform(0.2, 0.8) * page_w / max(page_h, page_w)
    spot = rng.uniform(0.08, 0.18) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.05, 0.15) ** 2))
    corners = rng.uniform(0.3, 0.6) * (((yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2) / 0.5)
    light = (1 + spot - corners).astype(np.float32)
    lit = img * (light[..., None] if img.ndim == 3 else light)
    return Image.fromarray((np.clip(lit, 0, 1) * 255).astype(np.uint8)), [text]


def case_shrunk(x, y, rng):
    """A photo of one digit already shrunk to 28-64 pixels a side, as many people send them."""
    digits, text = number(x, y, rng, 1, 1)
    height = int(rng.integers(60, 140))
    line = written_line(digits, height, rng, pen=int(rng.integers(0, 2)))
    side = int(max(line.shape) * rng.uniform(1.2, 1.8))
    ink = np.zeros((side, side), np.float32)
    top, left = (side - line.shape[0]) // 2, (side - line.shape[1]) // 2
    ink[top : top + line.shape[0], left : left + line.shape[1]] = line
    small = int(rng.integers(28, 65))
    return photograph(ink, rng).resize((small, small), Image.Resampling.LANCZOS), [text]


# Digits written in two strokes that do not touch, in a unit box (x right, y down).
TWO_STROKES = {
    "4": [[(0.55, 0.0), (0.0, 0.62), (1.0, 0.62)], [(0.78, 0.25), (0.78, 1.0)]],
    "5": [[(0.25, 0.08), (0.2, 0.48), (0.6, 0.42), (0.9, 0.65), (0.7, 0.95), (0.1, 0.92)], [(0.35, 0.0), (0.95, 0.0)]],
    "7": [[(0.0, 0.0), (0.95, 0.0), (0.35, 1.0)], [(0.25, 0.5), (0.55, 0.5)]],
}


def case_two_strokes(x, y, rng):
    """A 4, 5 or 7 written in two pen strokes that do not touch (the 7's bar clear of its stem)."""
    text = str(rng.choice(list(TWO_STROKES)))
    height = int(rng.integers(50, 150))
    width = int(height * rng.uniform(0.55, 0.8))
    page_h, page_w = int(height * rng.uniform(1.5, 3)), int(width * rng.uniform(2, 4))
    ink = np.zeros((page_h, page_w), np.float32)
    top, left = int(rng.integers(2, page_h - height - 1)), int(rng.integers(2, page_w - width - 1))
    pen = max(2, int(height * rng.uniform(0.06, 0.1)))
    for stroke in TWO_STROKES[text]:
        points = [(left + (px + rng.normal(0, 0.02)) * width, top + (py + rng.normal(0, 0.02)) * height) for px, py in stroke]
        pen_line(ink, points, pen)
    return photograph(ink, rng, dark_ink=True), [text]


def case_border_strip(x, y, rng):
    """One digit, with a strip of darker background (the table, the next page) along one border."""
    line, text, height = written_number(x, y, rng, (1, 1), (50, 150))
    page_h, page_w = int(height * rng.uniform(1.6, 3)), int(line.shape[1] * rng.uniform(2.5, 4))
    ink, _, _ = place(line, page_h, page_w, rng)
    yy, xx = np.mgrid[0:page_h, 0:page_w]
    side = int(rng.integers(4))
    depth, size = [(xx, page_w), (page_w - 1 - xx, page_w), (yy, page_h), (page_h - 1 - yy, page_h)][side]
    strip = (depth < rng.uniform(0.03, 0.1) * size).astype(np.float32)
    strip[ink > 0.05] = 0  # the digit lies on the paper, clear of the strip
    return photograph(ink, rng, dark_ink=True, backdrop=strip), [text]


def case_sixteen_bit(x, y, rng):
    """A number scanned to a 16-bit grayscale PNG, as scanners often save them."""
    line, text, height = written_number(x, y, rng, (1, 4), (40, 120))
    page_h, page_w = int(height * rng.uniform(1.5, 3)), int(line.shape[1] * rng.uniform(1.3, 2))
    ink = place(line, page_h, page_w, rng)[0]
    paper, pen = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.35)
    page = paper * (1 - ink) + pen * ink + rng.standard_normal(ink.shape) * 0.01
    return Image.fromarray((np.clip(page, 0, 1) * 65535).astype(np.uint16)), [text]


CASES = {
    "page_edge": case_page_edge, "ruled": case_ruled, "boxed": case_boxed, "touching": case_touching,
    "small_number": case_small_number, "two_lines": case_two_lines, "bold_tight": case_bold_tight,
    "faint_pencil": case_faint_pencil, "shadow": case_shadow, "uneven_light": case_uneven_light,
    "shrunk": case_shrunk, "two_strokes": case_two_strokes, "border_strip": case_border_strip,
    "sixteen_bit": case_sixteen_bit,
}


def write_case(name: str, x: np.ndarray, y: np.ndarray, out: Path, count: int, seed: int = 0) -> list[tuple[Path, list[str]]]:
    """Save `count` pages of one case (big photos as JPEG); return (path, lines) pairs."""
    rng = np.random.default_rng([seed, list(CASES).index(name)])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        img, lines = CASES[name](x, y, rng)
        path = out / f"{n:04d}_{'-'.join(lines)}.{'jpg' if max(img.size) > 1500 else 'png'}"
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
        written.append((path, lines))
    return written


def read_lines(result: dict) -> list[str]:
    """What `predict` read in a file, as lines of digits ([] for an error)."""
    if "error" in result:
        return []
    return result.get("lines") or [result.get("number", str(result.get("digit")))]


def main() -> int:
    parser = argparse.ArgumentParser(description="Write photographed-looking pages of MNIST test digits.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", required=True, help="mnist.npz")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, help="resize every page to SIZE x SIZE (e.g. 200)")
    parser.add_argument("--case", choices=[*CASES, "all"], help="write real-page cases instead of single digits")
    parser.add_argument("--check", type=Path, metavar="MODEL", help="predict the pages with MODEL and score them")
    args = parser.parse_args()
    with np.load(args.data, allow_pickle=False) as npz:
        x, y = npz["x_test"], npz["y_test"]
    if args.case:
        names = list(CASES) if args.case == "all" else [args.case]
        sets = {name: write_case(name, x, y, args.out / name if args.case == "all" else args.out, args.count, args.seed)
                for name in names}
    else:
        written = write_pages(x, y, args.out, args.count, args.seed)
        if args.size:
            for path, _ in written:
                Image.open(path).resize((args.size, args.size)).save(path)
        sets = {"pages": [(path, [str(label)]) for path, label in written]}
    if args.check:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        import num_net

        model = num_net.load_reader(args.check)
        num_net.predict_files(model, [next(iter(sets.values()))[0][0]])  # warm up: tracing is not per-image work
        for name, written in sets.items():
            start = time.perf_counter()
            results, _ = num_net.predict_files(model, [path for path, _ in written])
            seconds = time.perf_counter() - start
            correct = sum(read_lines(r) == lines for r, (_, lines) in zip(results, written))
            print(f"{name}: {correct}/{len(written)} correct ({correct / len(written):.1%}); "
                  f"{len(written) / seconds:.0f} images/s (read, preprocess, predict; model loaded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
