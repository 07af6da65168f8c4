#!/usr/bin/env python3
"""NumNet: train a small dense network on MNIST, evaluate it, and read your own handwriting.

Usage:
    python num_net.py                                    # same as `python num_net.py train`
    python num_net.py train --data mnist.npz --no-show   # offline, from a local copy
    python num_net.py evaluate --model handwritten.keras # scores, confusion matrix, mistakes
    python num_net.py predict photo.jpg scans/ --json    # digits and numbers in your images
    python num_net.py draw                               # draw with the mouse, watch it think

The network is always Flatten -> Dense(128, relu) -> Dense(128, relu) -> Dense(10, softmax).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------- constants

IMAGE_SIZE = 28
NUM_CLASSES = 10
HIDDEN_UNITS = (128, 128)
DEFAULT_MODEL = Path("handwritten.keras")
DEFAULT_OUT_DIR = Path("outputs")
DATA_ENV = "NUMNET_DATA"
COMMANDS = ("train", "evaluate", "predict", "draw")
SPLITS = ("x_train", "y_train", "x_test", "y_test")
# sha256 of each array's raw C-order bytes in the canonical MNIST release.
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
SHIFT_GROUP = 64  # training images per shared random shift (see training_batches)
EVALUATE_OUTPUTS = ("metrics.json", "predictions.png", "confusion.png", "mistakes.png")
TRAIN_OUTPUTS = (*EVALUATE_OUTPUTS, "history.png")
# One look for every figure: readable at 100% zoom.
FIGURE_STYLE = {"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "figure.titlesize": 13,
                "figure.dpi": 100, "savefig.dpi": 100, "image.cmap": "gray_r"}
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # images (3 dims), labels (1 dim); uint8 payload


class UserError(Exception):
    """A problem the user can fix (bad path, bad file); reported as one line, no traceback."""


# ---------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the measured recipe behind the committed model."""

    epochs: int = 30
    batch_size: int = 512
    validation_split: float = 0.1
    seed: int = 0
    learning_rate: float = 4e-3  # peak of the warmup + cosine schedule
    warmup_fraction: float = 0.05
    max_shift: int = 2  # random translation in pixels, training batches only


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where a command reads and writes."""

    data: str | None
    model: Path
    out_dir: Path
    show: bool


@dataclasses.dataclass(frozen=True)
class Dataset:
    """MNIST-shaped arrays (uint8 images, integer labels) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    canonical: bool  # byte-identical to the published MNIST

    def describe(self) -> str:
        kind = "MNIST (verified by content hash)" if self.canonical else "custom data"
        return f"{kind}: {len(self.x_train):,} train / {len(self.x_test):,} test images from {self.source}"


# ---------------------------------------------------------------- data


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, for a one-line error report."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a Keras-layout mnist.npz; pickled object arrays are refused, never unpickled."""
    if not zipfile.is_zipfile(path):  # else np.load would take it for a pickle
        raise UserError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in SPLITS if k not in npz.files]
            if missing:
                raise UserError(f"{path}: missing array(s) {', '.join(missing)} (need {', '.join(SPLITS)})")
            return {k: npz[k] for k in SPLITS}
    except UserError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UserError(f"{path}: holds pickled object arrays; refusing to unpickle them") from exc
        raise UserError(f"{path}: not a readable .npz file ({exc})") from exc
    except Exception as exc:  # zipfile, zlib and OS errors all mean a corrupt or unreadable file
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw) of unsigned bytes: 1-D labels or 3-D images."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") not in IDX_MAGIC.values():
        raise UserError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(f"{path}: IDX payload is {len(raw) - header} bytes, header says {expected - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """Read the four original MNIST IDX files, gzipped or not, from one folder."""
    arrays = {}
    for key, name in IDX_FILES.items():
        candidates = [folder / name, folder / f"{name}.gz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise UserError(f"{folder}: no {name}[.gz] here (need the four MNIST IDX files or an .npz)")
        arrays[key] = read_idx(found)
    return arrays


def download_mnist() -> dict[str, np.ndarray]:
    """Fetch MNIST through Keras, which caches it and checks its hash."""
    keras = import_keras()
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # no network, proxy, bad cache: all end the same way for the user
        raise UserError(
            f"could not download MNIST ({first_line(exc)}); pass a local copy with --data PATH "
            f"(an mnist.npz or a folder of IDX files) or set {DATA_ENV}"
        ) from exc
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def check_arrays(arrays: dict[str, np.ndarray], source: str) -> None:
    """Refuse anything that is not 28x28 uint8 images with matching 0-9 labels."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"{source}: x_{split} must be uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{source}: y_{split} must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise UserError(f"{source}: {len(x)} {split} images but {len(y)} labels")
        if len(y) == 0:
            raise UserError(f"{source}: the {split} split is empty")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise UserError(f"{source}: y_{split} has labels outside 0-9 ({y.min()}..{y.max()})")


def load_dataset(data: str | None) -> Dataset:
    """Load MNIST from an .npz, a folder of IDX files, or (data=None) the Keras download."""
    if data is None:
        arrays, source = download_mnist(), "keras.datasets.mnist"
    else:
        path = Path(data)
        if path.is_dir():
            arrays = load_idx_folder(path)
        elif path.is_file():
            arrays = load_npz(path)
        else:
            raise UserError(f"{path}: no such file or folder")
        source = str(path)
    check_arrays(arrays, source)
    canonical = all(_sha256(arrays[k]) == MNIST_SHA256[k] for k in SPLITS)
    arrays = {k: v.astype(np.int64) if k.startswith("y") else v for k, v in arrays.items()}
    return Dataset(**arrays, source=source, canonical=canonical)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; every path into the network goes through here."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


# ---------------------------------------------------------------- preprocessing (your own images)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
WORK_SIDE = 800  # images are shrunk to at most this many pixels a side before any other work
DIGIT_BOX = 20  # MNIST fits each digit in 20x20, then centres its mass in 28x28
MIN_CONTRAST = 0.08  # weaker ink than this (on a 0-1 scale) is a blank page
TARGET_STROKE = 2.2  # MNIST's typical stroke width, in pixels of the 20x20 box


def load_image(path: Path) -> np.ndarray:
    """Open any image Pillow reads as grayscale floats in [0, 1] (1 = white), downscaled early."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # large photos are shrunk at once
            img.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG decodes at reduced size: fast, bounded memory
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                img = flatten_alpha(img.convert("RGBA"))
            img = img.convert("L")
            img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
            return np.asarray(img, dtype=np.float32) / 255.0
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: image is too large to open safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from exc


def flatten_alpha(rgba):
    """Put a transparent drawing on a background that contrasts with its ink."""
    from PIL import Image

    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    ink = gray[alpha > 127]
    background = 0 if ink.size and ink.mean() > 127 else 255
    return Image.composite(rgba, Image.new("RGBA", rgba.size, (background,) * 3 + (255,)), rgba.getchannel("A"))


def shrink(gray: np.ndarray, side: int = 48):
    """A small Pillow copy of a grayscale page, for estimating its background cheaply."""
    from PIL import Image

    img = Image.fromarray((gray * 255).astype(np.uint8))
    factor = side / max(img.size)
    return img, img.resize((max(1, round(img.width * factor)), max(1, round(img.height * factor))), Image.Resampling.BOX)


def window_filter(image: np.ndarray, size: int, reduce) -> np.ndarray:
    """Combine each pixel's size x size neighbourhood with `reduce` (np.minimum, np.maximum or
    np.add), separably: rows, then columns; edges repeat."""
    half = size // 2
    padded = np.pad(image, half, mode="edge")
    height, width = image.shape
    rows = functools.reduce(reduce, [padded[i : i + height] for i in range(size)])
    return functools.reduce(reduce, [rows[:, i : i + width] for i in range(size)])


def smooth_background(img, small, dark_ink: bool) -> np.ndarray:
    """The paper's own brightness without the strokes, at full size: a morphological closing
    (dark ink) or opening (light ink) of the small copy, blurred, scaled back up."""
    from PIL import Image, ImageFilter

    first, second = (np.maximum, np.minimum) if dark_ink else (np.minimum, np.maximum)
    closed = window_filter(window_filter(np.asarray(small), 9, first), 9, second)
    small = Image.fromarray(closed).filter(ImageFilter.GaussianBlur(2))
    return np.asarray(small.resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def is_dark_ink(residual: np.ndarray) -> bool:
    """Polarity: whether the strongest departure from the paper (3x3-averaged, so noise does not
    count, and extremes rather than percentiles, so a small digit on a big page does) is dark."""
    local = window_filter(residual, 3, np.add)
    return bool(-local.min() > local.max())


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink bright on black in [0, 1]: polarity decided from the data, uneven lighting removed."""
    from PIL import Image, ImageFilter

    if min(gray.shape) < 32:  # already digit-sized: a flat background is assumed
        residual = gray - np.median(gray)
        dark = is_dark_ink(residual)
    else:
        img, small = shrink(gray)
        blurred = small.filter(ImageFilter.GaussianBlur(max(small.size) / 6)).resize(img.size, Image.Resampling.BILINEAR)
        dark = is_dark_ink(gray - np.asarray(blurred, np.float32) / 255)
        residual = gray - smooth_background(img, small, dark)
    ink = np.clip(-residual if dark else residual, 0, None)
    # The strongest ink, after a 3x3 mean so that lone noisy pixels don't count; a percentile
    # would miss a small digit on a large page, where ink is a fraction of a percent of pixels.
    peak = float(window_filter(ink, 3, np.add).max() / 9)
    if peak < MIN_CONTRAST:
        return np.zeros_like(ink)
    return np.clip(ink / peak, 0, 1)


def otsu_threshold(values: np.ndarray) -> float:
    """The threshold that best separates two brightness groups (Otsu's method)."""
    bins = 64
    hist = np.bincount(np.minimum((values.ravel() * bins).astype(np.int32), bins - 1), minlength=bins)
    edges = np.arange(bins + 1) / bins
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * edges[:-1])
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - total * mean) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(edges[np.argmax(between) + 1])


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Where the strokes are; specks smaller than the strokes are opened away on large images."""
    mask = ink > max(otsu_threshold(ink), 0.25)
    if min(mask.shape) >= 100 and stroke_width(mask) >= 4:  # thin pen strokes would not survive it
        mask = window_filter(window_filter(mask, 3, np.minimum), 3, np.maximum)
    return mask


def merge_close_runs(runs: list[tuple[int, int]], mask: np.ndarray) -> list[tuple[int, int]]:
    """Join column runs separated by a gap too narrow to be between two digits: broken pen
    strokes (an open 4, a 5 whose bar floats) are still one digit."""
    if not runs:
        return runs
    height = np.flatnonzero(mask.any(axis=1))
    min_gap = 0.12 * (height[-1] - height[0] + 1)
    merged = [runs[0]]
    for left, right in runs[1:]:
        if left - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], right)
        else:
            merged.append((left, right))
    return merged


def digit_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, bottom, left, right) of the digits, left to right.

    Digits are column runs of ink separated by empty columns; runs much lighter or shorter than
    the main one are specks, not digits.
    """
    columns = mask.any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], columns.astype(np.int8), [0]])))
    runs = merge_close_runs(list(zip(edges[::2], edges[1::2])), mask)
    boxes, masses = [], []
    for left, right in runs:
        rows = np.flatnonzero(mask[:, left:right].any(axis=1))
        boxes.append((rows[0], rows[-1] + 1, left, right))
        masses.append(mask[:, left:right].sum())
    if not boxes:
        return []
    tallest = max(b[1] - b[0] for b in boxes)
    heaviest = max(masses)
    return [b for b, m in zip(boxes, masses) if m >= 0.15 * heaviest and b[1] - b[0] >= 0.4 * tallest]


def stroke_width(mask: np.ndarray) -> float:
    """Average stroke width of a binary shape: its area over half its perimeter."""
    area = mask.sum()
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    perimeter = area - inner.sum()
    return float(2 * area / max(perimeter, 1))


def fit_digit(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One cropped digit -> MNIST's 28x28 uint8: fit in 20x20 keeping aspect, strokes thickened to
    MNIST's width, centre of mass in the middle."""
    from PIL import Image, ImageFilter

    scale = DIGIT_BOX / max(ink.shape)
    img = Image.fromarray((np.where(mask, ink, 0) * 255).astype(np.uint8))
    width_in_box = stroke_width(mask) * scale
    if width_in_box < TARGET_STROKE * 0.75:
        # Thicken at 3x the final size, where one filter step is a third of a final pixel.
        mid = 3 * DIGIT_BOX / max(ink.shape)
        img = img.resize((max(1, round(img.width * mid)), max(1, round(img.height * mid))), Image.Resampling.BOX)
        steps = int(np.clip(round((TARGET_STROKE - width_in_box) * 3 / 2), 1, 4))
        for _ in range(steps):
            img = img.filter(ImageFilter.MaxFilter(3))
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    patch = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    patch = np.clip(patch / max(patch.max(), 1), 0, 1)
    return centre_of_mass_frame(patch)


def centre_of_mass_frame(patch: np.ndarray) -> np.ndarray:
    """Place `patch` in a 28x28 frame with its centre of mass at the frame's centre."""
    rows, cols = np.indices(patch.shape)
    mass = max(patch.sum(), 1e-6)
    com_r, com_c = (rows * patch).sum() / mass, (cols * patch).sum() / mass
    top = int(round((IMAGE_SIZE - 1) / 2 - com_r))
    left = int(round((IMAGE_SIZE - 1) / 2 - com_c))
    top = min(max(top, 0), IMAGE_SIZE - patch.shape[0])
    left = min(max(left, 0), IMAGE_SIZE - patch.shape[1])
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return np.round(frame * 255).astype(np.uint8)


def preprocess(gray: np.ndarray) -> list[np.ndarray]:
    """A grayscale page (floats in [0, 1]) -> one MNIST-style 28x28 uint8 image per digit, left to
    right; [] when no digit is found. Feed the result through normalize(), as training does."""
    ink = ink_map(gray)
    if not ink.any():
        return []
    mask = ink_mask(ink)
    digits = []
    for top, bottom, left, right in digit_boxes(mask):
        sub_mask = mask[top:bottom, left:right]
        digits.append(fit_digit(ink[top:bottom, left:right], sub_mask))
    return digits


# ---------------------------------------------------------------- model


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what C++ libraries write to file descriptor 2 (TensorFlow's start-up banners ignore
    TF_CPP_MIN_LOG_LEVEL), so a user's terminal shows NumNet's own messages only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras():
    """Import Keras on the TensorFlow backend only when a command needs it (keeps --help instant)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "keras" not in sys.modules:
        with native_stderr_silenced():
            import keras  # noqa: F401
            import tensorflow as tf

            tf.constant(0.0) + 1  # the first op prints one more banner
    import keras

    return keras


def build_model():
    """The NumNet architecture: 784 -> 128 -> 128 -> 10, 118,282 parameters."""
    keras = import_keras()
    layers = [keras.Input((IMAGE_SIZE, IMAGE_SIZE)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in HIDDEN_UNITS]
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax"))
    return keras.Sequential(layers, name="numnet")


def load_model(path: Path):
    """Load a saved NumNet model in Keras's safe mode and check it maps 28x28 images to 10 classes."""
    keras = import_keras()
    if not path.is_file():
        raise UserError(f"{path}: model file not found (train one with `python num_net.py train`)")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .keras model file (not a zip archive)")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)  # never unsafe
    except Exception as exc:
        reason = first_line(exc)
        if "safe_mode" in reason:
            raise UserError(f"{path}: refused: the model carries Python code (e.g. a Lambda layer), "
                            "which NumNet never loads") from exc
        raise UserError(f"{path}: not a loadable Keras model ({reason[:200]})") from exc
    in_shape, out_shape = tuple(model.input_shape)[1:], tuple(model.output_shape)[1:]
    if in_shape != (IMAGE_SIZE, IMAGE_SIZE) or out_shape != (NUM_CLASSES,):
        raise UserError(f"{path}: not a NumNet model (takes {in_shape}, outputs {out_shape}; need (28, 28) -> (10,))")
    return model


# ---------------------------------------------------------------- train / evaluate


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float):
    """Hold out the last `fraction` of the samples, as Keras's validation_split does."""
    n_val = int(round(len(x) * fraction))
    n_val = min(max(n_val, 1), len(x) - 1) if len(x) > 1 else 0
    cut = len(x) - n_val
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def training_batches(x: np.ndarray, y: np.ndarray, cfg: TrainConfig):
    """An endless tf.data stream of reshuffled, randomly shifted training batches.

    Each epoch is one random permutation cut into full batches. Every group of SHIFT_GROUP
    images in a batch shares one random shift, a plain slice of a zero-padded copy: per-image
    shifts (a gather per pixel) cost a third of the training speed for no accuracy we could
    measure. No prefetch: on a 2-core machine its thread steals a core from the matrix multiplies.
    """
    import tensorflow as tf

    s, n = cfg.max_shift, len(x)
    batch = min(cfg.batch_size, n)
    per_epoch = n // batch
    padded = tf.constant(np.pad(x, ((0, 0), (s, s), (s, s))))
    labels = tf.constant(y)
    groups = [(start, min(SHIFT_GROUP, batch - start)) for start in range(0, batch, SHIFT_GROUP)]

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=[cfg.seed, epoch])
        return tf.reshape(order[: per_epoch * batch], (per_epoch, batch))

    def shifted(step, index):
        images = tf.gather(padded, index)
        corner = tf.random.stateless_uniform((len(groups), 2), [cfg.seed, step], 0, 2 * s + 1, dtype=tf.int32)
        crops = [
            tf.slice(images, [start, corner[g, 0], corner[g, 1]], [size, IMAGE_SIZE, IMAGE_SIZE])
            for g, (start, size) in enumerate(groups)
        ]
        return tf.concat(crops, axis=0), tf.gather(labels, index)

    # Stateless random ops keyed on (seed, epoch) and (seed, step): the same seed gives the same
    # batches in every process, whatever else ran before.
    stream = tf.data.Dataset.counter().map(epoch_order).unbatch().enumerate().map(shifted)
    return stream, per_epoch


def throughput_meter(samples_per_epoch: int):
    """A Keras LambdaCallback that records training samples per second of each epoch, with the
    validation pass excluded; returns the callback and the list it fills."""
    keras = import_keras()
    rates: list[float] = []
    clock = {"val": 0.0}

    def epoch_begin(epoch, logs=None):
        clock.update(start=time.perf_counter(), val=0.0)

    def test_begin(logs=None):
        clock["val_start"] = time.perf_counter()

    def test_end(logs=None):
        clock["val"] += time.perf_counter() - clock["val_start"]

    def epoch_end(epoch, logs=None):
        rates.append(samples_per_epoch / (time.perf_counter() - clock["start"] - clock["val"]))

    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=epoch_begin, on_epoch_end=epoch_end, on_test_begin=test_begin, on_test_end=test_end
    )
    return callback, rates


def train(model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, verbose: int = 2) -> dict:
    """Fit `model` on normalized images with Adam, a warmup+cosine schedule and random shifts."""
    keras = import_keras()
    import tensorflow as tf

    (x_fit, y_fit), (x_val, y_val) = split_validation(x, y, cfg.validation_split)
    stream, per_epoch = training_batches(x_fit, y_fit, cfg)
    total = per_epoch * cfg.epochs
    warmup = int(total * cfg.warmup_fraction)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, warmup_target=cfg.learning_rate, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=per_epoch,  # one graph call per epoch: least Python overhead
        jit_compile=True,
    )
    # A ready-made dataset: numpy arrays here would be re-wrapped into a new one every epoch.
    validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(2048).cache() if len(x_val) else None
    meter, rates = throughput_meter(per_epoch * min(cfg.batch_size, len(x_fit)))
    start = time.perf_counter()
    history = model.fit(
        stream,
        epochs=cfg.epochs,
        steps_per_epoch=per_epoch,
        validation_data=validation,
        callbacks=[meter],
        shuffle=False,  # training_batches already reshuffles every epoch
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    steady = rates[1:] or rates  # the first epoch pays for graph compilation
    return {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "train_seconds": seconds,
        "samples_per_second": statistics.median(steady),
        "train_accuracy": evaluate(model, x_fit, y_fit)["accuracy"],
        "val_accuracy": evaluate(model, x_val, y_val)["accuracy"] if len(x_val) else None,
    }


def predict_proba(model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Class probabilities for normalized images: plain eager calls in chunks, which unlike
    model.predict() trace no new graph for each new batch size."""
    keras = import_keras()
    parts = [keras.ops.convert_to_numpy(model(x[i : i + chunk], training=False)) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, cross-entropy loss and predicted probabilities on normalized images."""
    keras = import_keras()
    proba = predict_proba(model, x)
    loss = keras.losses.sparse_categorical_crossentropy(y, proba)
    return {
        "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
        "loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "proba": proba,
    }


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10x10 counts: row = true digit, column = predicted digit (TensorFlow's own op)."""
    import tensorflow as tf

    return tf.math.confusion_matrix(labels, predicted, num_classes=NUM_CLASSES).numpy()


def per_class_scores(confusion: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support for each digit, from a confusion matrix."""
    hits = np.diag(confusion).astype(float)
    support, claimed = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(hits, claimed, out=np.zeros_like(hits), where=claimed > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return [
        {"digit": d, "precision": float(precision[d]), "recall": float(recall[d]), "f1": float(f1[d]),
         "support": int(support[d])}
        for d in range(NUM_CLASSES)
    ]


def most_confident_mistakes(labels: np.ndarray, proba: np.ndarray, count: int) -> np.ndarray:
    """Indices of wrong predictions, the most confident first."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def format_report(per_class: list[dict], confusion: np.ndarray) -> str:
    """The per-digit table and the confusion matrix as plain text."""
    lines = ["digit  precision  recall     f1  support"]
    lines += [f"{c['digit']:>5}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:.4f}  {c['support']:7d}"
              for c in per_class]
    lines += ["", "confusion matrix (rows: true digit, columns: predicted)"]
    lines.append("      " + "".join(f"{d:>6}" for d in range(NUM_CLASSES)))
    lines += [f"{d:>6}" + "".join(f"{n:>6}" for n in row) for d, row in enumerate(confusion)]
    return "\n".join(lines)


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The files to predict: each file as given, each folder's images sorted by name."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            files.append(path)
    return files


def read_digits(path: Path) -> dict:
    """Load and preprocess one file: {'file', 'gray', 'digits'} or {'file', 'error'}."""
    try:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        gray = load_image(path)
        digits = preprocess(gray)
        if not digits:
            raise UserError(f"{path}: no digit found (blank or empty page)")
        return {"file": str(path), "gray": gray, "digits": digits}
    except UserError as exc:
        return {"file": str(path), "error": str(exc)}


def top_k(proba: np.ndarray, k: int = 3) -> list[list]:
    order = np.argsort(-proba, kind="stable")[:k]
    return [[int(d), round(float(proba[d]), 4)] for d in order]


def describe_prediction(read: dict, proba: np.ndarray) -> dict:
    """The JSON-ready answer for one file: a digit, or a number with a per-digit breakdown."""
    per_digit = [{"digit": int(p.argmax()), "confidence": round(float(p.max()), 4), "top": top_k(p)} for p in proba]
    if len(per_digit) == 1:
        return {"file": read["file"], **per_digit[0]}
    number = "".join(str(d["digit"]) for d in per_digit)
    confidence = round(float(np.prod([d["confidence"] for d in per_digit])), 4)
    return {"file": read["file"], "number": number, "confidence": confidence, "digits": per_digit}


def predict_files(model, files: Sequence[Path]) -> tuple[list[dict], list[dict]]:
    """Predict every file in one batch; return JSON-ready results and the preprocessed reads."""
    # Pillow's decoders and NumPy's loops release the GIL: threads use every core.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        reads = list(pool.map(read_digits, files))
    batch = [d for r in reads for d in r.get("digits", [])]
    proba = predict_proba(model, normalize(np.stack(batch))) if batch else np.zeros((0, NUM_CLASSES))
    results, start = [], 0
    for read in reads:
        if "error" in read:
            results.append({"file": read["file"], "error": read["error"]})
            continue
        read["proba"] = proba[start : start + len(read["digits"])]
        start += len(read["digits"])
        results.append(describe_prediction(read, read["proba"]))
    return results, reads


def format_prediction(result: dict) -> str:
    """One line for a file's prediction."""
    if "number" in result:
        digits = ", ".join(f"{d['digit']} {d['confidence']:.1%}" for d in result["digits"])
        return f"{result['file']}: number {result['number']} ({result['confidence']:.1%})  digits: {digits}"
    top = " | ".join(f"{d} {p:.1%}" for d, p in result["top"])
    return f"{result['file']}: {result['digit']} ({result['confidence']:.1%})  top 3: {top}"


# ---------------------------------------------------------------- files and plots


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A crash, Ctrl-C or full disk mid-write leaves the old file untouched and no temporary behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:  # disk full, permissions changed mid-run, ...
        raise UserError(f"{path}: could not write ({exc.strerror or exc}); the previous file is untouched") from exc
    finally:
        tmp.unlink(missing_ok=True)


def save_model(model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def save_json(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def display_available() -> bool:
    """Whether a plot window could open: on Linux that needs an X11 or Wayland display."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def pyplot(show: bool):
    """Import pyplot with a GUI backend only when windows are wanted and can open."""
    import matplotlib

    if not (show and display_available()):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(FIGURE_STYLE)
    return plt


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    return path


def show_figures(plt) -> None:
    """Open the figures in windows when the backend can; never blocks or fails headless."""
    if plt.get_backend().lower() != "agg":
        plt.show()
    plt.close("all")


def sample_with_mistakes(labels: np.ndarray, predicted: np.ndarray, count: int, mistakes: int) -> np.ndarray:
    """Indices of the first test images plus the first few the network gets wrong."""
    wrong = np.flatnonzero(predicted != labels)[:mistakes]
    first = [i for i in range(len(labels)) if i not in set(wrong)][: count - len(wrong)]
    return np.concatenate([np.asarray(first, dtype=int), wrong])


def plot_predictions(plt, images: np.ndarray, labels: np.ndarray, proba: np.ndarray, count: int = 40):
    """A grid of test images titled 'predicted (true)'; mistakes in red with a red frame."""
    predicted = proba.argmax(axis=1)
    picks = sample_with_mistakes(labels, predicted, min(count, len(labels)), mistakes=count // 4)
    cols = min(10, len(picks))
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for ax, i in zip(axes.flat, picks):
        ax.axis("on")
        ax.imshow(images[i], cmap="gray_r")
        wrong = predicted[i] != labels[i]
        color = "tab:red" if wrong else "black"
        ax.set_title(f"{predicted[i]} ({labels[i]})" + (" wrong" if wrong else ""), color=color, fontsize=10)
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(3 if wrong else 0.5)
    errors = int(np.sum(predicted[picks] != labels[picks]))
    tail = f"the last {errors} are mistakes, in red" if errors else "no mistakes among them"
    fig.suptitle(f"NumNet on test images, titled predicted (true); {tail}")
    return fig


def plot_history(plt, history: dict):
    """Loss and accuracy per epoch, training and validation, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], "o-", ms=3, label="training (shifted images)")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "o-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric.capitalize() + " per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("NumNet training history")
    return fig


def plot_confusion(plt, confusion: np.ndarray):
    """The confusion matrix as a heatmap with the count in every cell."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(confusion, cmap="Blues", norm="log" if confusion.max() > 0 else None)
    fig.colorbar(image, ax=ax, label="images (log scale)")
    threshold = np.sqrt(max(confusion.max(), 1))  # mid-colour on the log scale
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            color = "white" if count > threshold else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_yticks(range(NUM_CLASSES))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"Confusion matrix: {confusion.sum():,} test images, {accuracy:.2%} on the diagonal")
    return fig


def plot_mistakes(plt, images: np.ndarray, labels: np.ndarray, proba: np.ndarray, count: int = 24):
    """The most confidently wrong test images, each with true digit, prediction and probability."""
    picks = most_confident_mistakes(labels, proba, count)
    cols = 8
    rows = max(1, -(-len(picks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks):
        guess = int(proba[i].argmax())
        ax.imshow(images[i])
        ax.set_title(f"true {labels[i]}\nsaid {guess} ({proba[i, guess]:.0%})", color="tab:red", fontsize=10)
    title = f"The {len(picks)} most confident mistakes" if len(picks) else "No mistakes on the test set"
    fig.suptitle(title)
    return fig


def plot_predict(plt, reads: list[dict], count: int = 36):
    """Per image: the original, the 28x28 the network saw, and its probabilities."""
    shown = [r for r in reads if "proba" in r][:count]
    fig, axes = plt.subplots(len(shown), 3, figsize=(9, 2.1 * len(shown)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.2, 1.2, 2]})
    for (original, seen, bars), read in zip(axes, shown):
        original.imshow(read["gray"], cmap="gray", vmin=0, vmax=1)
        original.set_title(Path(read["file"]).name, fontsize=9)
        seen.imshow(np.concatenate(read["digits"], axis=1), cmap="gray", vmin=0, vmax=255)
        answer = "".join(str(int(p.argmax())) for p in read["proba"])
        seen.set_title(f"network input -> {answer}")
        for ax in (original, seen):
            ax.set_xticks([])
            ax.set_yticks([])
        if len(read["proba"]) == 1:
            proba = read["proba"][0]
            bars.bar(range(NUM_CLASSES), proba, color=["tab:red" if d == proba.argmax() else "tab:blue" for d in range(10)])
            bars.set_xticks(range(NUM_CLASSES))
            bars.set_title("probability of each digit")
        else:  # a number: how sure the network is of each of its digits
            bars.bar(range(len(answer)), read["proba"].max(axis=1), color="tab:red")
            bars.set_xticks(range(len(answer)), list(answer))
            bars.set_title("probability of each digit read")
        bars.set_ylim(0, 1)
        bars.set_ylabel("probability")
    fig.suptitle("NumNet predictions on your images")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- draw: a live canvas


class DrawPad:
    """A Matplotlib window to draw digits in, with the network's live answer beside it.

    Mouse drag paints with a round brush; every change re-runs predict's preprocessing and the
    network. `c` or the Clear button clears, `q` quits. Each finished stroke prints one line.
    """

    SIZE = 280  # canvas pixels a side: 10x MNIST
    BRUSH = 11.0  # brush radius in canvas pixels

    def __init__(self, plt, model, out=sys.stdout):
        from matplotlib.widgets import Button

        self.model, self.out, self.plt = model, out, plt
        self.ink = np.zeros((self.SIZE, self.SIZE), np.float32)
        self.last: tuple[float, float] | None = None
        self.proba = np.zeros(NUM_CLASSES)
        self.fig = plt.figure(figsize=(10, 5.2))
        if self.fig.canvas.manager is not None:
            self.fig.canvas.manager.set_window_title("NumNet: draw a digit")
        grid = self.fig.add_gridspec(2, 2, width_ratios=[1.25, 1], height_ratios=[1, 1])
        self.ax_canvas = self.fig.add_subplot(grid[:, 0])
        self.ax_seen = self.fig.add_subplot(grid[0, 1])
        self.ax_bars = self.fig.add_subplot(grid[1, 1])
        self.canvas_image = self.ax_canvas.imshow(self.ink, cmap="gray", vmin=0, vmax=1)
        self.seen_image = self.ax_seen.imshow(np.zeros((IMAGE_SIZE, IMAGE_SIZE)), cmap="gray", vmin=0, vmax=255)
        self.bars = self.ax_bars.bar(range(NUM_CLASSES), self.proba, color="tab:blue")
        self.answer = self.fig.text(0.93, 0.72, "", fontsize=40, ha="center", va="center", weight="bold")
        self._style_axes()
        self.clear_button = Button(self.fig.add_axes((0.02, 0.02, 0.1, 0.06)), "Clear")
        self.clear_button.on_clicked(lambda _event: self.clear())
        for name, handler in (("button_press_event", self.on_press), ("motion_notify_event", self.on_move),
                              ("button_release_event", self.on_release), ("key_press_event", self.on_key),
                              ("draw_event", self.on_draw)):
            self.fig.canvas.mpl_connect(name, handler)
        # Blitting: a full redraw of the figure takes ~60 ms; repainting only the parts that change
        # keeps each update well under the 50 ms a mouse move may take.
        self.live = [self.canvas_image, self.seen_image, *self.bars, self.answer]
        for artist in self.live:
            artist.set_animated(True)
        self.background = None
        self.refresh()

    def _style_axes(self) -> None:
        self.ax_canvas.set_title("draw a digit here (c: clear, q: quit)")
        self.ax_seen.set_title("what the network sees (28x28)")
        self.ax_bars.set_title("probability of each digit")
        self.ax_bars.set_ylim(0, 1)
        self.ax_bars.set_xticks(range(NUM_CLASSES))
        for ax in (self.ax_canvas, self.ax_seen):
            ax.set_xticks([])
            ax.set_yticks([])

    def paint(self, x: float, y: float) -> None:
        """Stamp the brush along the segment from the last point to (x, y), in canvas pixels."""
        x0, y0 = self.last if self.last is not None else (x, y)
        steps = max(1, int(np.hypot(x - x0, y - y0) / (self.BRUSH / 3)))
        rows, cols = np.ogrid[: self.SIZE, : self.SIZE]
        for t in np.linspace(0, 1, steps + 1):
            cx, cy = x0 + t * (x - x0), y0 + t * (y - y0)
            # soft edge, one pixel wide, like a pen on paper rather than a hard stamp
            self.ink = np.maximum(self.ink, np.clip(self.BRUSH - np.hypot(cols - cx, rows - cy), 0, 1))
        self.last = (x, y)

    def predict(self) -> list[np.ndarray]:
        """Preprocess the canvas exactly like `predict` does and run the network."""
        digits = preprocess(self.ink)
        self.proba = predict_proba(self.model, normalize(np.stack(digits))) if digits else np.zeros((0, NUM_CLASSES))
        return digits

    def refresh(self) -> None:
        digits = self.predict()
        self.canvas_image.set_data(self.ink)
        self.seen_image.set_data(np.concatenate(digits, axis=1) if digits else np.zeros((IMAGE_SIZE, IMAGE_SIZE)))
        self.seen_image.set_extent((-0.5, IMAGE_SIZE * max(len(digits), 1) - 0.5, IMAGE_SIZE - 0.5, -0.5))
        last = self.proba[-1] if len(self.proba) else np.zeros(NUM_CLASSES)
        for d, bar in enumerate(self.bars):
            bar.set_height(last[d])
            bar.set_color("tab:red" if len(self.proba) and d == last.argmax() else "tab:blue")
        self.answer.set_text(self.reading() or "?")
        self.blit()

    def on_draw(self, event) -> None:
        """After a full redraw (first show, resize), keep the static parts to blit onto."""
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for artist in self.live:
            self.fig.draw_artist(artist)

    def blit(self) -> None:
        canvas = self.fig.canvas
        if self.background is None:
            canvas.draw_idle()
            return
        canvas.restore_region(self.background)
        for artist in self.live:
            self.fig.draw_artist(artist)
        canvas.blit(self.fig.bbox)

    def reading(self) -> str:
        return "".join(str(int(p.argmax())) for p in self.proba)

    def summary(self) -> str:
        """The one-line answer printed when a stroke ends."""
        if not len(self.proba):
            return "digit=none"
        confidence = float(np.prod(self.proba.max(axis=1)))
        key = "digit" if len(self.proba) == 1 else "number"
        return f"{key}={self.reading()} confidence={confidence:.3f}"

    def clear(self) -> None:
        self.ink[:] = 0
        self.last = None
        self.refresh()

    def on_press(self, event) -> None:
        if event.inaxes is self.ax_canvas and event.button == 1:
            self.last = None
            self.paint(event.xdata, event.ydata)
            self.refresh()

    def on_move(self, event) -> None:
        if self.last is not None and event.inaxes is self.ax_canvas and event.xdata is not None:
            self.paint(event.xdata, event.ydata)
            self.refresh()

    def on_release(self, event) -> None:
        if self.last is not None:
            self.last = None
            print(self.summary(), file=self.out, flush=True)

    def on_key(self, event) -> None:
        if event.key == "c":
            self.clear()
        elif event.key == "q":
            self.plt.close(self.fig)


# ---------------------------------------------------------------- commands


def library_versions() -> dict:
    import tensorflow as tf

    keras = import_keras()
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def report(plt, ds: Dataset, model, out_dir: Path) -> dict:
    """Evaluate on the test set; save predictions, confusion and mistakes figures; return the metrics."""
    result = evaluate(model, normalize(ds.x_test), ds.y_test)
    proba = result["proba"]
    confusion = confusion_matrix(ds.y_test, proba.argmax(axis=1))
    save_figure(plot_predictions(plt, ds.x_test, ds.y_test, proba), out_dir / "predictions.png")
    save_figure(plot_confusion(plt, confusion), out_dir / "confusion.png")
    save_figure(plot_mistakes(plt, ds.x_test, ds.y_test, proba), out_dir / "mistakes.png")
    return {
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "per_class": per_class_scores(confusion),
        "confusion_matrix": confusion.tolist(),
    }


def saved_list(out_dir: Path, names: Sequence[str]) -> str:
    return ", ".join(str(out_dir / name) for name in names)


def check_writable_folder(folder: Path, what: str) -> None:
    """Create `folder` if needed and make sure files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the {what} folder ({exc.strerror or exc})") from exc
    try:  # a real write: permission bits say nothing for root or read-only mounts
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: the {what} folder is not writable ({exc.strerror or exc})") from exc


def preflight(run: RunConfig, writes_model: bool) -> None:
    """Check every path a command will use before any slow work starts."""
    if run.data is not None:
        data = Path(run.data)
        if not data.exists():
            raise UserError(f"{data}: no such file or folder")
        if not os.access(data, os.R_OK):
            raise UserError(f"{data}: not readable")
    check_writable_folder(run.out_dir, "output")
    if writes_model:
        if run.model.suffix != ".keras":
            raise UserError(f"{run.model}: the model file name must end in .keras")
        if run.model.is_dir():
            raise UserError(f"{run.model}: is a folder, not a model file")
        check_writable_folder(run.model.parent, "model")
    # evaluate and predict load the model (load_model checks it) before any slow work


def train_metrics(fit: dict, test: dict, ds: Dataset, cfg: TrainConfig, run: RunConfig) -> dict:
    """Everything metrics.json records about a training run."""
    return {
        **test,
        "train_accuracy": fit["train_accuracy"],
        "val_accuracy": fit["val_accuracy"],
        "epochs": cfg.epochs,
        "train_seconds": round(fit["train_seconds"], 2),
        "samples_per_second": round(fit["samples_per_second"]),
        "seed": cfg.seed,
        "data": ds.describe(),
        "canonical_mnist": ds.canonical,
        "config": dataclasses.asdict(cfg),
        "model": str(run.model),
        **library_versions(),
        "history": fit["history"],
    }


def cmd_train(run: RunConfig, cfg: TrainConfig) -> int:
    ds = load_dataset(run.data)
    print(f"data: {ds.describe()}", file=sys.stderr)
    import_keras().utils.set_random_seed(cfg.seed)  # before the weights are initialized
    model = build_model()
    fit = train(model, normalize(ds.x_train), ds.y_train, cfg, verbose=1 if sys.stdout.isatty() else 2)
    save_model(model, run.model)
    plt = pyplot(run.show)
    save_figure(plot_history(plt, fit["history"]), run.out_dir / "history.png")
    metrics = train_metrics(fit, report(plt, ds, model, run.out_dir), ds, cfg, run)
    save_json(metrics, run.out_dir / "metrics.json")
    val = "n/a" if metrics["val_accuracy"] is None else f"{metrics['val_accuracy']:.2%}"
    print(
        f"train accuracy {metrics['train_accuracy']:.2%} | validation {val} | "
        f"test {metrics['test_accuracy']:.2%} (loss {metrics['test_loss']:.4f})\n"
        f"trained {cfg.epochs} epochs in {metrics['train_seconds']:.1f} s, "
        f"{metrics['samples_per_second']:,} samples/s\n"
        f"saved {run.model}, {saved_list(run.out_dir, TRAIN_OUTPUTS)}"
    )
    show_figures(plt)
    return 0


def cmd_evaluate(run: RunConfig) -> int:
    model = load_model(run.model)
    ds = load_dataset(run.data)
    print(f"data: {ds.describe()}", file=sys.stderr)
    plt = pyplot(run.show)
    test = report(plt, ds, model, run.out_dir)
    metrics = {**test, "data": ds.describe(), "canonical_mnist": ds.canonical, "model": str(run.model)}
    save_json({**metrics, **library_versions()}, run.out_dir / "metrics.json")
    print(format_report(test["per_class"], np.array(test["confusion_matrix"])), end="\n\n")
    print(f"test accuracy {test['test_accuracy']:.2%} (loss {test['test_loss']:.4f}) on {len(ds.x_test):,} images")
    print(f"saved {saved_list(run.out_dir, EVALUATE_OUTPUTS)}")
    show_figures(plt)
    return 0


def cmd_predict(run: RunConfig, paths: Sequence[Path], as_json: bool) -> int:
    model = load_model(run.model)
    files = image_files(paths)
    if not files:
        raise UserError(f"{', '.join(map(str, paths))}: no image files found")
    results, reads = predict_files(model, files)
    for result in results:
        if "error" in result:
            print(f"num_net: error: {result['error']}", file=sys.stderr)
        elif not as_json:
            print(format_prediction(result))
    if as_json:
        print(json.dumps(results, indent=2))
    if any("proba" in r for r in reads):
        plt = pyplot(run.show)
        save_figure(plot_predict(plt, reads), run.out_dir / "predict.png")
        show_figures(plt)
    return 1 if any("error" in r for r in results) else 0


def cmd_draw(run: RunConfig) -> int:
    if not display_available():  # checked before TensorFlow and the model load: it takes no time
        print("num_net: error: draw needs a display (no DISPLAY or WAYLAND_DISPLAY is set); "
              "use `predict` on an image file instead", file=sys.stderr)
        return 2
    plt = pyplot(True)
    if plt.get_backend().lower() == "agg":
        print("num_net: error: draw needs an interactive Matplotlib backend (TkAgg or QtAgg); "
              "install Tk or PySide6, or set MPLBACKEND", file=sys.stderr)
        return 2
    pad = DrawPad(plt, load_model(run.model))
    plt.show()
    plt.close(pad.fig)
    return 0


# ---------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_common_flags(parser: argparse.ArgumentParser, data: bool = True) -> None:
    """Flags every command shares: where the model lives, where outputs go, whether to show plots."""
    if data:
        parser.add_argument(
            "--data",
            default=os.environ.get(DATA_ENV),
            help=f"local MNIST: an .npz (x_train, y_train, x_test, y_test) or a folder of the four "
            f"IDX files; default ${DATA_ENV}, else download through Keras",
        )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model file (.keras)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="folder for plots and metrics.json")
    parser.add_argument("--no-show", action="store_true", help="never open plot windows (PNGs are always saved)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="num_net.py", description=__doc__.splitlines()[0], formatter_class=fmt,
        epilog="With no COMMAND, `train` runs. `num_net.py COMMAND --help` lists each command's flags.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    defaults = TrainConfig()
    train_p = commands.add_parser("train", help="train, evaluate, save the model and plots", formatter_class=fmt)
    add_common_flags(train_p)
    train_p.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="passes over the data")
    train_p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="images per step")
    train_p.add_argument(
        "--validation-split", type=fraction, default=defaults.validation_split,
        help="fraction of the training images held out (the last ones) for validation",
    )
    train_p.add_argument("--seed", type=int, default=defaults.seed, help="same seed, same model (on one machine)")
    eval_p = commands.add_parser("evaluate", help="score a saved model on the test set", formatter_class=fmt)
    add_common_flags(eval_p)
    predict_p = commands.add_parser("predict", help="read digits in your own images", formatter_class=fmt)
    predict_p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of them")
    predict_p.add_argument("--json", action="store_true", help="print one JSON array instead of lines")
    add_common_flags(predict_p, data=False)
    draw_p = commands.add_parser("draw", help="draw a digit with the mouse and watch the prediction",
                                 formatter_class=fmt)
    draw_p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model file (.keras)")
    draw_p.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in {"-h", "--help"}):
        argv = ["train", *argv]  # plain `python num_net.py [flags]` trains
    return parser.parse_args(argv)


def run_command(args: argparse.Namespace) -> int:
    out_dir, show = getattr(args, "out_dir", DEFAULT_OUT_DIR), not getattr(args, "no_show", False)
    run = RunConfig(data=getattr(args, "data", None), model=args.model, out_dir=out_dir, show=show)
    if args.command == "draw":
        return cmd_draw(run)
    preflight(run, writes_model=args.command == "train")
    if args.command == "predict":
        return cmd_predict(run, args.paths, args.json)
    if args.command == "train":
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, validation_split=args.validation_split, seed=args.seed
        )
        return cmd_train(run, cfg)
    return cmd_evaluate(run)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run_command(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"num_net: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("num_net: interrupted; nothing was overwritten", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
