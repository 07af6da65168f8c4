"""Re-rendered MNIST digits that look like a user's own photos and scans, for tests and measurement.

    python tests/pages.py --data ../shared/mnist/mnist.npz --count 500 OUT_DIR

writes OUT_DIR/NNNN_label-D.(png|jpg): test digits scaled up to 40-220 px, drawn with MNIST's
stroke or a thinner pen, placed at random on a page up to six times larger, dark-on-light or
light-on-dark, on an uneven (gradient) background
with noise and blur, in gray or tinted color, saved as JPEG or PNG. Then

    python num_net.py predict OUT_DIR --json --no-show

and compare each file's `digit` with the label in its name; or let this script do it:

    python tests/pages.py --data ../shared/mnist/mnist.npz --count 300 --check handwritten.keras OUT_DIR

prints the accuracy and the preprocessing + prediction speed (model already loaded).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def crop_digit(digit: np.ndarray) -> np.ndarray:
    """The inked part of an MNIST image (white on black, uint8)."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def render_page(digits: list[np.ndarray], rng: np.random.Generator, dark_ink: bool | None = None) -> Image.Image:
    """Draw MNIST digits (28x28 uint8, white on black) left to right on a photographed-looking page."""
    height = int(rng.integers(40, 220))
    glyphs = []
    pen = int(rng.integers(0, 3))  # 0: MNIST's own stroke width; 1, 2: thinner pens
    for d in digits:
        crop = Image.fromarray(crop_digit(d))
        width = max(2, round(crop.width * height / crop.height))
        glyph = crop.resize((width, height), Image.Resampling.BICUBIC)
        for _ in range(pen * height // 60):
            glyph = glyph.filter(ImageFilter.MinFilter(3))
        glyphs.append(np.asarray(glyph, np.float32) / 255)
    gap = int(height * rng.uniform(0.15, 0.4))
    strip_w = sum(g.shape[1] for g in glyphs) + gap * (len(glyphs) - 1)
    page_h = int(height * rng.uniform(1.3, 6.0))
    page_w = int(max(strip_w * rng.uniform(1.2, 4.0), page_h * rng.uniform(0.7, 1.5)))
    ink = np.zeros((page_h, page_w), np.float32)
    top, left = int(rng.integers(0, page_h - height + 1)), int(rng.integers(0, page_w - strip_w + 1))
    for g in glyphs:
        ink[top : top + height, left : left + g.shape[1]] = np.clip(g, 0, 1)
        left += g.shape[1] + gap
    yy, xx = np.mgrid[0:page_h, 0:page_w] / max(page_h, page_w)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0.1, 0.35)
    dark_ink = bool(rng.integers(2)) if dark_ink is None else dark_ink
    if dark_ink:
        paper, pen = rng.uniform(0.65, 0.95) - gradient, rng.uniform(0.05, 0.3)
    else:
        paper, pen = rng.uniform(0.05, 0.25) + gradient, rng.uniform(0.75, 1.0)
    page = paper * (1 - ink) + pen * ink + rng.normal(0, rng.uniform(0.01, 0.04), ink.shape)
    img = Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    if rng.integers(2):  # a colour photo: tinted paper and ink
        tint = rng.uniform(0.75, 1.0, 3)
        rgb = np.asarray(img, np.float32)[..., None] * tint
        img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    return img


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


def main() -> int:
    parser = argparse.ArgumentParser(description="Write photographed-looking pages of MNIST test digits.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", required=True, help="mnist.npz")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, help="resize every page to SIZE x SIZE (e.g. 200)")
    parser.add_argument("--check", type=Path, metavar="MODEL", help="predict the pages with MODEL and score them")
    args = parser.parse_args()
    with np.load(args.data, allow_pickle=False) as npz:
        written = write_pages(npz["x_test"], npz["y_test"], args.out, args.count, args.seed)
    if args.size:
        for path, _ in written:
            Image.open(path).resize((args.size, args.size)).save(path)
    if args.check:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import num_net

        model = num_net.load_model(args.check)
        num_net.predict_files(model, [written[0][0]])  # warm up: graph tracing is not per-image work
        start = time.perf_counter()
        results, _ = num_net.predict_files(model, [path for path, _ in written])
        seconds = time.perf_counter() - start
        correct = sum(r.get("digit") == label for r, (_, label) in zip(results, written))
        print(f"{correct}/{len(written)} correct ({correct / len(written):.1%}); "
              f"{len(written) / seconds:.0f} images/s (read, preprocess, predict; model loaded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
