"""Letters, words and digits in handwriting fonts that training never sees, read as predict reads
a photo: how often a letter or a word is "not a digit", and how often a digit is turned away.

    python tests/helpers/font_letters.py [--model handwritten.keras] [--count 2] [--per-letter]

The fonts are typefaces drawn from people's handwriting, from Debian's packages (FONT_PACKAGES;
.ci/run installs them). Training makes its letters from Matplotlib's own fonts and a jittered pen,
so these are a check from outside it. Each glyph is written dark on light paper at a random size,
pen weight and tilt, photographed with a little shading, noise and blur, and read by num_net's
whole page reader. Letters drawn like digits (O, I, S, Z and their small forms, B, D, G, J, Q,
b, g, q, j, c) are left out. A word is "not a digit" when predict finds no digit in it at all.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[2]
FONT_PACKAGES = ("fonts-humor-sans", "fonts-dkg-handwriting", "fonts-breip", "fonts-bwht", "fonts-femkeklaver",
                 "fonts-rufscript", "fonts-kristi", "fonts-comic-neue", "fonts-ecolier-court",
                 "fonts-kaushanscript", "fonts-klee", "fonts-dancingscript")
FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
FONT_FAMILIES = ("humor-sans", "fifthhorseman", "breip", "bwht", "femkeklaver", "rufscript", "kristi",
                 "comic-neue", "ecolier-court", "kaushanscript", "klee", "dancingscript")
LETTERS = "ACEFHKLMNPRTUVWXYadefhkmnprtuvwxy"
WORDS = ("hello", "cat", "Name", "the", "yes", "Mark", "Ave", "ten", "Kate", "fax", "New York", "Apt")
SETS = {"letters": LETTERS, "words": WORDS, "digits": tuple("0123456789")}


def font_files() -> list[Path]:
    """The handwriting fonts installed from FONT_PACKAGES."""
    return sorted(p for d in FONT_DIRS for family in FONT_FAMILIES
                  for p in (Path(d) / family).glob("*") if p.suffix.lower() in {".ttf", ".otf"})


def photographed(text: str, font: Path, rng: np.random.Generator) -> np.ndarray:
    """`text` written in `font` at a random size, weight and tilt, on lightly shaded, noisy paper:
    a grayscale page, floats in [0, 1]."""
    size = int(rng.integers(60, 140))
    face = ImageFont.truetype(str(font), size)
    left, top, right, bottom = face.getbbox(text)
    canvas = Image.new("L", (right - left + 2 * size, bottom - top + 2 * size), 0)
    ImageDraw.Draw(canvas).text((size - left, size - top), text, fill=255, font=face,
                                stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR)
    ink = np.asarray(canvas, np.float32) / 255
    paper = rng.uniform(0.75, 0.95) - np.linspace(0, rng.uniform(0, 0.15), ink.shape[1])[None, :]
    page = paper * (1 - ink) + rng.uniform(0.05, 0.3) * ink + rng.normal(0, 0.015, ink.shape)
    img = Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.0)))), np.float32) / 255


def answers(num_net, model, glyphs, fonts: list[Path], count: int, rng: np.random.Generator) -> list[tuple[str, dict]]:
    """Each glyph written `count` times in each font, and predict's answer for each page."""
    texts = [text for font in fonts for text in glyphs for _ in range(count)]
    pages = [photographed(text, font, rng) for font in fonts for text in glyphs for _ in range(count)]
    readings = num_net.surest_readings(model, [num_net.read_page(page, text) for text, page in zip(texts, pages)])
    return list(zip(texts, map(num_net.json_answer, readings)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "handwritten.keras")
    parser.add_argument("--count", type=int, default=2, help="pages of each glyph in each font")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-letter", action="store_true", help="also print the rate for each glyph")
    args = parser.parse_args()
    fonts = font_files()
    if not fonts:
        sys.exit(f"no handwriting fonts found: apt-get install {' '.join(FONT_PACKAGES)}")
    sys.path.insert(0, str(ROOT))
    import num_net

    model = num_net.load_reader(args.model)
    rng = np.random.default_rng(args.seed)
    for name, glyphs in SETS.items():
        read = answers(num_net, model, glyphs, fonts, args.count, rng)
        rejected = collections.Counter(text for text, answer in read if "error" in answer)
        total = collections.Counter(text for text, _ in read)
        share = sum(rejected.values()) / len(read)
        if name == "digits":
            right = np.mean([answer.get("digit") == int(text) for text, answer in read])
            print(f"digits: {share:.1%} of {len(read)} turned away as no digit, {right:.1%} read right")
        else:
            print(f"{name}: {share:.1%} of {len(read)} read as not a digit ({len(fonts)} fonts)")
        if args.per_letter:
            print("   ", " ".join(f"{text}:{rejected[text] / total[text]:.0%}" for text in glyphs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
