#!/usr/bin/env python3
"""NumNet: train a small dense network on MNIST, evaluate it, and read your own handwriting.

Usage:
    python num_net.py                                    # same as `python num_net.py train`
    python num_net.py train --data mnist.npz --no-show   # offline, from a local copy
    python num_net.py evaluate --model handwritten.keras # scores, confusion matrix, mistakes
    python num_net.py predict photo.jpg scans/ --json    # digits and numbers in your photos and scans
    python num_net.py draw                               # draw with the mouse; keys 0-9 save examples
    python num_net.py serve                              # the same in a browser, phones too: draw, photograph, teach
    python num_net.py export site/                       # the network as a static web page, no server needed
    python num_net.py train --extra my_digits            # learn your handwriting too
    python num_net.py evaluate --images my_digits        # how well it reads your labelled examples

The network is always Flatten -> Dense(128, relu) -> Dense(128, relu) -> Dense(10, softmax).

The map: three parts, each a run of sections under banners (search for a section's name), each
section opening with its entry point and following the data down. Part 1 never calls into part 2.

PART 1: THE TRAINING SCRIPT
    Constants                 names, files and the training numbers, each with its reason
    Config                    TrainConfig (the recipe), RunConfig, Dataset, and the results' types
    Data                      MNIST from an .npz, IDX files or the Keras download, checked; normalize
    Model                     build_model; model files read within bounds; NumPyNetwork, the NumPy forward pass
    Training data: non-digits and the world's styles
                              what training adds to MNIST: marks that are no digit, digits MNIST lacks
    Training                  train(): the restyled batch stream, the loss, the schedule
    Evaluation and its figures
                              evaluate(), report(): scores, confusion, mistakes, the plots
    Files                     atomic writes, the model saved for plain Keras
    The train and evaluate commands
                              cmd_train, cmd_evaluate, metrics.json
    Digits the MNIST way: what training and the reader share
                              fit_digit (a cropped digit -> MNIST's 28x28), read_proba (with tilts)
    Fast kernels              running minimum and maximum, tilts: each equals a library call, measured
PART 2: READING YOUR HANDWRITING
    A page in, its digits out
                              find_digits, the entry point: a page -> lines of 28x28 digits; read_page
    Images in                 files and uploads decoded safely, to grayscale
    Paper and ink             the paper estimated and taken away; where the ink is
    Rules and lines across the page
                              ruled lines, page edges and underlines taken out
    Pieces of ink             connected ink, the digits' height, what is clutter
    Pieces of one digit       a 5 whose bar floats, a 4 in two strokes
    Lines of writing          pieces into lines, read left to right; words left out
    One digit or two          touching digits cut apart
    The network's choice      between readings, by the network's own probabilities; second looks
    Answers                   a chosen reading -> predict's JSON
    Files and folders         many files read in order by worker processes; your labelled folders
    predict.png               the picture of what was read
PART 3: THE APPS AND THE COMMAND LINE
    Predict                   cmd_predict
    Draw                      the Matplotlib canvas
    Serve                     the web page for phones and desktops, and its API
    Export                    the network as a static page
    Command line              main, the parser, run_command
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import datetime
import functools
import gzip
import hashlib
import http
import io
import ipaddress
import itertools
import json
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
import types
import urllib.parse
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

# NumNet's own NumPy products are small (a batch of digits through a 784-128-128-10 network) and a
# folder is read by a worker process per core: BLAS threads would only spin against the workers
# (TensorFlow keeps its own threads). Set before NumPy loads its BLAS; a user's setting stands.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

if TYPE_CHECKING:  # for the annotations only: Keras is imported where a command needs it (import_keras)
    import keras


####################################################################################################
####################################################################################################
# PART 1: THE TRAINING SCRIPT ######################################################################
####################################################################################################
####################################################################################################


####################################################################################################
# Constants ########################################################################################
####################################################################################################

IMAGE_SIZE = 28
NUM_CLASSES = 10
HIDDEN_UNITS = (128, 128)
DEFAULT_MODEL = Path("handwritten.keras")
DEFAULT_OUT_DIR = Path("outputs")
DEFAULT_SAVE_DIR = Path("my_digits")
DATA_ENV = "NUMNET_DATA"
COMMANDS = ("train", "evaluate", "predict", "draw", "serve", "export")
DIGITS = tuple(str(d) for d in range(NUM_CLASSES))
SPLITS = ("x_train", "y_train", "x_test", "y_test")
# sha256 of each array's raw C-order bytes in the canonical MNIST release.
MNIST_SHA256 = types.MappingProxyType({
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
})
IDX_FILES = types.MappingProxyType({
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
})
IDX_MAGIC = types.MappingProxyType({3: 0x00000803, 1: 0x00000801})  # images (3 dims), labels (1 dim); uint8 payload
AUGMENTATION = ("rotation", "shear", "scale", "max_shift", "bolder", "thinner")
AUGMENT_CHUNK = 4096  # training images restyled per call of the augmentation
EXTRA_SHARE = 0.05  # your own examples, repeated, make up this share of the training images
FULL_AUGMENTATION = 15  # runs this many epochs or longer get the full writer-style augmentation
NOT_DIGIT_SHARE = 0.08  # non-digits added to training, as a share of the training images
NOT_DIGIT_REPEATS = 2  # each made once and shown this many times (restyled anew each time): half the making
NOT_DIGIT_SOURCES = 20000  # the training digits that pieces and pairs are cut from
STYLE_SHARE = 0.08  # digits in the world's styles added to training, as a share of the training images (docs/training.md)
NOT_DIGIT_WEIGHT = 1.0  # weight of a non-digit's flat-target loss against a digit's (Hendrycks et al.)
NOT_DIGIT_CHECK = 600  # held-out non-digits made to measure the threshold by (100 of each kind)
NOT_A_DIGIT = 0.25  # a blob whose likeliest digit is less probable than this is not a digit (README: how chosen)
TTA_TILT = 8.0  # degrees: a digit written a little tilted either way, as read at test time
METRICS, PREDICTIONS, CONFUSION, MISTAKES, HISTORY = (
    "metrics.json", "predictions.png", "confusion.png", "mistakes.png", "history.png")
EVALUATE_OUTPUTS = (METRICS, PREDICTIONS, CONFUSION, MISTAKES)
TRAIN_OUTPUTS = (*EVALUATE_OUTPUTS, HISTORY)
# One look for every figure: readable at 100% zoom.
FIGURE_STYLE = types.MappingProxyType({"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11,
                                       "figure.titlesize": 13, "figure.dpi": 100, "savefig.dpi": 100,
                                       "image.cmap": "gray_r"})
# The most a .keras member may inflate to: NumNet's config.json is about 3 KB and its weights
# 0.5 MB; anything far larger is not a model of this size, whatever it claims (None: any other member).
MODEL_MEMBER_LIMITS = types.MappingProxyType(
    {"config.json": 1 << 20, "metadata.json": 1 << 20, "model.weights.h5": 64 << 20, None: 1 << 20})


class UserError(Exception):
    """A problem the user can fix (bad path, bad file); reported as one line, no traceback."""


####################################################################################################
# Config ###########################################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the measured recipe behind the committed model."""

    epochs: int = 30
    batch_size: int | None = None  # None: chosen from the epochs (see for_length)
    validation_split: float = 0.1
    seed: int = 0
    learning_rate: float = 5e-3  # peak of the warmup + cosine schedule
    warmup_fraction: float = 0.05
    # Writer-style augmentation of every training image (see training_batches):
    rotation: float = 12.0  # degrees, either way
    shear: float = 0.3  # slant, either way
    scale: float = 0.15  # width and height each scaled by up to this fraction, either way
    max_shift: float = 2.0  # pixels, either way
    bolder: float = 0.15  # fraction of images with thicker strokes
    thinner: float = 0.15  # fraction of images with thinner strokes
    non_digits: float = NOT_DIGIT_SHARE  # non-digits added, as a share of the training images
    styles: float = STYLE_SHARE  # digits drawn in the styles MNIST lacks (WORLD_STYLES), as a share of them


# The batch size a run of at least this many epochs takes when none is given, longest runs first.
BATCH_LADDER = ((20, 512), (8, 256), (3, 64), (1, 32))


def for_length(cfg: TrainConfig) -> TrainConfig:
    """The recipe fitted to the run's length. Short runs take smaller batches (more steps from one
    pass) and gentler augmentation, which pays off only over many epochs; a batch size that was
    given is kept."""
    batch = cfg.batch_size or next(size for epochs, size in BATCH_LADDER if cfg.epochs >= epochs)
    gentle = min(1.0, cfg.epochs / FULL_AUGMENTATION)
    return dataclasses.replace(
        cfg, batch_size=batch,
        **{name: getattr(cfg, name) * gentle for name in AUGMENTATION},
    )


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


#: A network to read with: NumNet's own, as NumPy arrays (load_reader: no TensorFlow), or any Keras model.
Network: TypeAlias = "NumPyNetwork | keras.Model"
#: How `evaluate --images` reads a labelled folder (part 2's score_folder):
#: model, folder, out_dir, figure name -> its score.
FolderScorer: TypeAlias = Callable[[Network, Path, Path, str], dict]


class LabelledImages(NamedTuple):
    """28x28 uint8 images and a label for each (a digit, or for non-digits their kind)."""

    images: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Examples:
    """Your own labelled examples, read as predict reads them (load_examples): 28x28 uint8 images,
    their digits, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    folders: dict[str, int]  # examples taken from each folder
    skipped: int  # files skipped: blank, or not as many digits as their label

    def describe(self) -> dict:
        """What metrics.json records of them."""
        per_digit = np.bincount(self.labels, minlength=NUM_CLASSES).tolist()
        return {"folders": self.folders, "examples": len(self.images), "per_digit": per_digit, "skipped": self.skipped}


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A model's scores on labelled, normalized images."""

    accuracy: float
    loss: float  # mean cross-entropy
    proba: np.ndarray  # class probabilities, one row per image


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run did: its history and speed, its scores, and what it trained on."""

    history: dict[str, list[float]]  # Keras's per-epoch numbers: loss, accuracy, val_loss, val_accuracy
    train_seconds: float
    samples_per_second: float  # the median epoch's, the first (compiling) epoch left out
    train_accuracy: float  # on the training digits as given, read as the test set is
    val_accuracy: float | None  # None when nothing was held out
    config: TrainConfig  # the recipe as run: fitted to the run's length (for_length)
    extra_repeats: int  # how many times your examples were repeated in each epoch
    non_digits: int  # non-digits made (each shown NOT_DIGIT_REPEATS times)
    styled: int  # digits drawn in the world's styles


####################################################################################################
# Data #############################################################################################
####################################################################################################


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
            raise UserError(missing_or_special(path))
        source = str(path)
    check_arrays(arrays, source)
    canonical = all(_sha256(arrays[k]) == MNIST_SHA256[k] for k in SPLITS)
    arrays = {k: v.astype(np.int64) if k.startswith("y") else v for k, v in arrays.items()}
    return Dataset(**arrays, source=source, canonical=canonical)


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
    except Exception as exc:  # zipfile, zlib and OS errors all mean a corrupt or unreadable file
        if isinstance(exc, ValueError) and "allow_pickle" in str(exc):  # NumPy's refusal, before any unpickling
            raise UserError(f"{path}: holds pickled object arrays; refusing to unpickle them") from exc
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


def missing_or_special(path: Path) -> str:
    """What is wrong with a path that is neither a regular file nor a folder."""
    if path.exists():
        return f"{path}: not a regular file or folder (a device, a pipe or a socket?); give an .npz file or a folder"
    return f"{path}: no such file or folder"


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; every path into the network goes through here."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def plural(count: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, for a one-line error report."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(text: str) -> str:
    """A message kept on one line: a newline or other control character in it (a file name can
    hold one) is written as an escape."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def warn(message: str) -> None:
    print(f"num_net: warning: {one_line(message)}", file=sys.stderr)


####################################################################################################
# Model ############################################################################################
####################################################################################################


def build_model() -> keras.Model:
    """The NumNet architecture: 784 -> 128 -> 128 -> 10, 118,282 parameters."""
    keras = import_keras()
    layers = [keras.Input((IMAGE_SIZE, IMAGE_SIZE)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in HIDDEN_UNITS]
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax"))
    return keras.Sequential(layers, name="numnet")


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


def load_model(path: Path) -> keras.Model:
    """Load a saved NumNet model in Keras's safe mode and check it maps 28x28 images to 10 classes
    with finite weights."""
    check_model_file(path)
    if carries_code(model_config(path)):
        raise UserError(f"{path}: refused: the model carries Python code (e.g. a Lambda layer), "
                        "which NumNet never loads")
    keras = import_keras()
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)  # never unsafe, whatever the check missed
    except Exception as exc:
        raise UserError(f"{path}: not a loadable Keras model ({first_line(exc)[:200]})") from exc
    in_shape, out_shape = tuple(model.input_shape)[1:], tuple(model.output_shape)[1:]
    if in_shape != (IMAGE_SIZE, IMAGE_SIZE) or out_shape != (NUM_CLASSES,):
        raise UserError(f"{path}: not a NumNet model (takes {in_shape}, outputs {out_shape}; need (28, 28) -> (10,))")
    check_finite(model.get_weights(), path)
    return model


def load_reader(path: Path, numpy_only: bool = False) -> Network:
    """The model for reading images. NumNet's own architecture is read straight from the file and
    run with NumPy (no TensorFlow: an answer in well under a second); any other model goes through
    Keras's safe loader and its checks, unless `numpy_only` (serve) refuses it."""
    check_model_file(path)
    config = model_config(path)
    try:
        with zipfile.ZipFile(path) as archive:
            weights = read_member(archive, "model.weights.h5") if is_numnet_config(config) else None
    except (KeyError, OSError, zipfile.BadZipFile) as exc:  # no weights file
        raise UserError(f"{path}: not a loadable Keras model ({first_line(exc)[:200]})") from exc
    if weights is None:
        if not describes_a_model(config):
            raise UserError(f"{path}: not a loadable Keras model (its config.json describes no model)")
        if numpy_only:
            raise UserError(f"{path}: not NumNet's own network (Flatten -> Dense(128) -> Dense(128) -> Dense(10)), "
                            "which is all serve reads: it never starts TensorFlow")
        return load_model(path)  # another architecture: Keras's safe loader and its checks
    return NumPyNetwork.from_weights(weights, path)


@dataclasses.dataclass(frozen=True)
class NumPyNetwork:
    """NumNet's three Dense layers as NumPy arrays: relu, relu, softmax, without TensorFlow."""

    kernels: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_weights(cls, h5_bytes: bytes, path: Path) -> NumPyNetwork:
        """Read the Dense layers' kernels and biases from a .keras file's model.weights.h5."""
        import h5py

        # Keras stores a Sequential's layers by class and position, whatever their names: dense, dense_1, ...
        names = ["dense"] + [f"dense_{i}" for i in range(1, len(HIDDEN_UNITS) + 1)]
        sizes = [IMAGE_SIZE * IMAGE_SIZE, *HIDDEN_UNITS, NUM_CLASSES]
        shapes = [shape for a, b in zip(sizes, sizes[1:]) for shape in ((a, b), (b,))]
        try:
            with h5py.File(io.BytesIO(h5_bytes), "r") as h5:
                found = [h5[f"layers/{n}/vars/{i}"] for n in names for i in (0, 1)]
                if [getattr(d, "shape", None) for d in found] != shapes:  # checked before anything is allocated
                    raise UserError(f"{path}: the model's weights do not fit NumNet's layers")
                arrays = [np.asarray(d, np.float32) for d in found]
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: the model's weights cannot be read ({first_line(exc)})") from exc
        check_finite(arrays, path)
        return cls(tuple(arrays[::2]), tuple(arrays[1::2]))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for normalized 28x28 images, as Keras computes them."""
        hidden = x.reshape(len(x), -1).astype(np.float32)
        for kernel, bias in zip(self.kernels[:-1], self.biases[:-1]):
            hidden = np.maximum(hidden @ kernel + bias, 0)
        logits = hidden @ self.kernels[-1] + self.biases[-1]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def model_config(path: Path):
    """A checked .keras file's config.json, read as data (never code); one line for a file that
    has none, or none that parses."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(read_member(archive, "config.json"))
    except RecursionError as exc:
        raise UserError(f"{path}: refused: its config.json is nested too deep to be a model's") from exc
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:  # no config.json, or not JSON
        raise UserError(f"{path}: not a loadable Keras model ({first_line(exc)[:200]})") from exc


def carries_code(config) -> bool:
    """Whether a Keras config holds Python code: a Lambda layer or a serialized function, what
    Keras's safe mode refuses to load. Walked with a stack, not recursion: any depth json parses."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") in ("Lambda", "__lambda__"):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def describes_a_model(config) -> bool:
    """Whether a .keras config.json has a model's shape at all: a class name and a config object.
    Anything else is refused without starting TensorFlow (600 MB) to say so."""
    return (isinstance(config, dict) and isinstance(config.get("class_name"), str)
            and isinstance(config.get("config"), dict))


def is_numnet_config(config) -> bool:
    """Whether a .keras config.json describes exactly Flatten -> Dense(128, relu) -> Dense(128,
    relu) -> Dense(10, softmax) on 28x28 inputs, in a Sequential model."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        return False
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return False
    found = [(layer.get("class_name"), layer.get("config")) for layer in layers if isinstance(layer, dict)]
    if not all(isinstance(c, dict) for _, c in found):
        return False
    wanted = ["InputLayer", "Flatten"] + ["Dense"] * (len(HIDDEN_UNITS) + 1)
    if [kind for kind, _ in found] != wanted or found[0][1].get("batch_shape") != [None, IMAGE_SIZE, IMAGE_SIZE]:
        return False
    dense = [(c.get("units"), c.get("activation"), c.get("use_bias")) for _, c in found[2:]]
    return dense == [(units, "relu", True) for units in HIDDEN_UNITS] + [(NUM_CLASSES, "softmax", True)]


def check_model_file(path: Path) -> None:
    """Refuse what is not a .keras zip, or whose members would inflate past MODEL_MEMBER_LIMITS:
    a zip's declared sizes are known before anything is read, and reading stops at them."""
    if not path.is_file():
        raise UserError(f"{path}: model file not found (train one with `python num_net.py train`)")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .keras model file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .keras model file ({first_line(exc)})") from exc
    for member in members:
        limit = MODEL_MEMBER_LIMITS.get(member.filename, MODEL_MEMBER_LIMITS[None])
        if member.file_size > limit:
            raise UserError(f"{path}: refused: its {member.filename} would inflate to {member.file_size:,} bytes "
                            f"(a NumNet model's is far smaller; the limit is {limit:,})")


def read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    """One member of a checked model zip (check_model_file), never more than its limit."""
    with archive.open(name) as member:
        return member.read(MODEL_MEMBER_LIMITS.get(name, MODEL_MEMBER_LIMITS[None]))


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    """Whether no array holds NaN or infinity: weights and losses of a run that did not diverge."""
    return all(np.isfinite(a).all() for a in arrays)


def check_finite(weights: Sequence[np.ndarray], path: Path) -> None:
    """Refuse a model whose weights hold NaN or infinity: it would answer every image the same."""
    if not all_finite(weights):
        raise UserError(f"{path}: the model's weights are not all finite (NaN or infinity: training diverged); "
                        "train it again")


####################################################################################################
# Training data: non-digits and the world's styles #################################################
####################################################################################################

# What a page holds besides digits, made by the script itself and mixed into training with a flat
# target over the ten classes (outlier exposure, Hendrycks et al. 2019), so that the network's own
# top probability says "not a digit". Each is framed by fit_digit, exactly as predict frames a blob.
NOT_DIGIT_KINDS = ("letters", "words", "scribbles", "pieces", "pairs", "page_marks")
# Letters that are drawn like digits (O, I, l, S, Z, b, g, q, B, G, D, ...) are not non-digits.
LETTERS = "ACEFHKMNPRTUVWXYacdefhkmnprtuvwxy"
LETTER_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
                "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
                "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf",
                "STIXGeneralBol.ttf", "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmss10.ttf", "cmti10.ttf", "cmb10.ttf")

INK_LEVEL = 64  # of 0-255: a pixel of a drawn (made) image this bright is ink
MIN_INK_PIXELS = 12  # a made image with less ink than this is too little to frame as a mark
ONE_STROKE = 0.3  # a made mark whose second moments are this much thinner than long is one straight stroke: a 1


def non_digits(count: int, digits: np.ndarray, seed: int, held_out: bool = False) -> LabelledImages:
    """`count` 28x28 uint8 images of things that are not digits, an equal share of each kind in
    NOT_DIGIT_KINDS, framed as predict frames a blob; returns them and each one's kind (an index
    into NOT_DIGIT_KINDS). `digits` (28x28 uint8, white on black) are cut into pieces and pairs;
    `held_out` draws from a stream that training never uses."""
    from PIL import ImageFont
    import matplotlib

    fonts_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [ImageFont.truetype(str(fonts_dir / name), 40) for name in LETTER_FONTS]
    makers = (lambda rng: _letters(rng, fonts, 1) if rng.integers(2) else _pen_letter(rng),
              lambda rng: _letters(rng, fonts, int(rng.integers(2, 5))),
              _scribble, lambda rng: _digit_piece(rng, digits), lambda rng: _digit_pair(rng, digits), _page_mark)
    return _made(count, makers, range(len(makers)), np.random.default_rng([seed % 2**32, int(held_out)]))


def _made(count: int, makers: Sequence, labels: Sequence[int], rng: np.random.Generator) -> LabelledImages:
    """`count` images made by `makers` in turn, each made again until there is enough ink to frame
    it, framed as predict frames a blob; each labelled with its maker's label."""
    images = []
    for n in range(count):
        while (framed := _framed(makers[n % len(makers)](rng))) is None:
            pass
        images.append(framed)
    return LabelledImages(np.array(images, np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
                          np.array([labels[n % len(labels)] for n in range(count)], np.int64))


def _framed(ink: np.ndarray | None) -> np.ndarray | None:
    """Ink (uint8, bright) cropped to its pixels and fit to 28x28 by fit_digit; None if too little."""
    if ink is None or (mask := ink > INK_LEVEL).sum() < MIN_INK_PIXELS:
        return None
    crop = ink_crop(mask)
    return fit_digit(ink[crop].astype(np.float32) / 255, mask[crop])


def _canvas(width: int = 64, height: int = 64):
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height))
    return img, ImageDraw.Draw(img)


def _letters(rng: np.random.Generator, fonts: list, count: int) -> np.ndarray:
    """Printed letters, one or a short word: handwriting's letters once restyled by training."""
    img, draw = _canvas(40 + 36 * count, 64)
    text = "".join(rng.choice(list(LETTERS), count))
    draw.text((6, 4), text, fill=255, font=fonts[rng.integers(len(fonts))])
    return np.asarray(img)


# Capital letters as a pen draws them, stroke by stroke, in a unit box (x right, y down).
PEN_LETTERS = types.MappingProxyType({
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.2, 0.6), (0.8, 0.6)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0.05, 0.55)], [(0.3, 0.4), (1, 1)]],
    "M": [[(0, 1), (0.1, 0), (0.5, 0.7), (0.9, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
})


def _pen_letter(rng: np.random.Generator) -> np.ndarray:
    """A capital drawn with a pen: each point moved a little, as no hand draws a letter the same twice."""
    img, draw = _canvas()
    strokes = PEN_LETTERS[rng.choice(list(PEN_LETTERS))]
    width, height = rng.uniform(28, 52), rng.uniform(40, 54)
    for points in strokes:
        moved = [(6 + (x + rng.normal(0, 0.06)) * width, 5 + (y + rng.normal(0, 0.06)) * height) for x, y in points]
        draw.line(moved, fill=255, width=int(rng.integers(2, 6)), joint="curve")
    return np.asarray(img)


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A pen scribble: one stroke through many random points, crossing itself."""
    img, draw = _canvas()
    points = [tuple(p) for p in rng.uniform(6, 58, (int(rng.integers(5, 10)), 2))]
    draw.line(points, fill=255, width=int(rng.integers(2, 6)), joint="curve")
    return _not_straight(np.asarray(img))


def _upscaled(digit: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(digit).resize((56, 56), Image.Resampling.BILINEAR))


def _digit_piece(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray | None:
    """A digit cut by a straight line through it, one side kept: a fragment that is no digit."""
    from scipy import ndimage as ndi

    ink = _upscaled(digits[rng.integers(len(digits))])
    rows, cols = np.nonzero(ink > INK_LEVEL)
    angle = rng.uniform(0, np.pi)
    along = rows * np.sin(angle) + cols * np.cos(angle)
    cut = np.quantile(along, rng.uniform(0.35, 0.6))
    keep = np.zeros_like(ink, bool)
    keep[rows[along < cut], cols[along < cut]] = True
    piece = np.where(ndi.binary_dilation(keep, iterations=2), ink, 0).astype(np.uint8)
    mask = piece > INK_LEVEL
    if mask.sum() < MIN_INK_PIXELS:
        return None
    # A piece closed round a hole is a 0, whatever digit it was cut from.
    return None if ndi.binary_fill_holes(mask).sum() > 1.05 * mask.sum() else _not_straight(piece)


def _not_straight(ink: np.ndarray) -> np.ndarray | None:
    """The ink, or None where it is one straight stroke: that is a 1, however it was made."""
    minor, major = squared_axes(ink > INK_LEVEL)
    return None if minor < ONE_STROKE**2 * major else ink


def _digit_pair(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """Two digits side by side, touching or overlapping: one blob that is a number, not a digit."""
    first, second = (_upscaled(digits[i]) for i in rng.integers(len(digits), size=2))
    shift = int(rng.integers(24, 40))
    pair = np.zeros((56, 56 + shift), np.uint8)
    pair[:, :56] = first
    pair[:, shift:] = np.maximum(pair[:, shift:], second)
    return pair


def _page_mark(rng: np.random.Generator) -> np.ndarray:
    """What a page reader meets besides writing: a shadow's or a table's edge (a filled region with
    one ragged side), a bit of a ruled line (thin, long, near level), or a stain (a filled blob)."""
    img, draw = _canvas()
    kind = rng.integers(3)
    if kind == 0:
        edge = [(x, 32 + 10 * np.sin(x / rng.uniform(4, 12)) + rng.uniform(-4, 4)) for x in range(0, 65, 4)]
        draw.polygon([*edge, (64, 64), (0, 64)], fill=255)
    elif kind == 1:
        y, tilt = rng.uniform(20, 44), rng.uniform(-8, 8)
        draw.line([(0, y), (64, y + tilt)], fill=255, width=int(rng.integers(1, 5)))
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(6, 12))))
        radii = rng.uniform(10, 28, len(angles))
        draw.polygon([(32 + r * np.cos(a), 32 + r * np.sin(a)) for r, a in zip(radii, angles)], fill=255)
    return np.asarray(img)


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 14) -> list:
    """Points along an ellipse's arc, angles in turns (0 = right, 0.25 = down), as a pen draws it."""
    turns = np.linspace(start, end, steps) * 2 * np.pi
    return [(cx + rx * np.cos(t), cy + ry * np.sin(t)) for t in turns]


def _continental_one(rng: np.random.Generator) -> list:
    """A 1 with a long up-stroke (flag) and no foot: how most of Europe, Russia and Latin America
    write it, and what MNIST's American 1s (a bare stroke) do not show. The flag runs from a short
    tick to a stroke as long as the stem, begun left of the digit's box."""
    flag = (rng.uniform(-0.2, 0.25), rng.uniform(0.25, 0.7))
    return [[flag, (0.75, 0.0), (0.7, 1.0)]]


def _footed_one(rng: np.random.Generator) -> list:
    """A flagged 1 standing on a foot: taught in Germany, Russia and many school hands. The foot
    is a short serif or a base as wide as the digit, reaching further left of the stem than right."""
    return [*_continental_one(rng), [(rng.uniform(0.0, 0.4), 1.0), (rng.uniform(0.9, 1.2), 1.0)]]


def _cursive_one(rng: np.random.Generator) -> list:
    """A 1 begun with a long up-stroke from the baseline, then straight down: the 1 of cursive
    school scripts (Scandinavian, German and older European hands), an inverted V with one leg upright."""
    start = (rng.uniform(0.0, 0.2), rng.uniform(0.7, 1.0))
    bow = rng.uniform(0.0, 0.12)  # the up-stroke sags a little below its chord, as a quick pen swings
    middle = ((start[0] + 0.75) / 2 + bow, start[1] / 2 + bow)
    return [[start, middle, (0.75, 0.0), (0.7, 1.0)]]


def _crossed_seven(rng: np.random.Generator) -> list:
    """A 7 with a bar across its stem: continental Europe, Russia, and engineers everywhere."""
    bar = rng.uniform(0.45, 0.6)
    # Half begin with a short stroke hanging from the top's left end, as Russian and French school hands write it.
    tick = [(rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.4))] if rng.random() < 0.5 else []
    return [[*tick, (0.0, 0.05), (1.0, 0.0), (0.35, 1.0)], [(0.25, bar), (0.95, bar)]]


def _closed_four(rng: np.random.Generator) -> list:
    """A 4 whose top is closed, a triangle on its stem, as type prints it and many adults write."""
    cross = rng.uniform(0.4, 0.72)  # the bar, from 40% of the way down (a large triangle) to 72%
    stem = rng.uniform(0.7, 0.9)  # the bar runs on past the stem: what tells it from a 9's pointed loop
    return [[(stem, 1.0), (stem, 0.0), (0.0, cross), (1.0, cross)]]


def _straight_nine(rng: np.random.Generator) -> list:
    """A 9 as a loop on a straight upright stem: the printed 9 of most school hands."""
    r = rng.uniform(0.26, 0.32)
    return [[*_arc(0.5, r, 0.45, r, 0.0, -1.0), (0.95, r), (0.92, 1.0)]]


def _looped_two(rng: np.random.Generator) -> list:
    """A 2 with a small loop where its diagonal meets the base: common in European and older hands."""
    loop = rng.uniform(0.08, 0.14)
    return [[*_arc(0.5, 0.28, 0.45, 0.28, 0.55, 1.05, 10), (0.2, 0.9), (0.2 - loop, 1.0 - loop),
             (0.15, 0.85), (0.3, 1.0), (1.0, 1.0)]]


def _hooked_six(rng: np.random.Generator) -> list:
    """A 6 whose top is a wide arc curling over to the right, like a shepherd's crook: the 6 of
    Russian and other European school cursive, which MNIST's straight-stemmed 6s do not show."""
    curl = rng.uniform(-0.1, 0.0)  # where the pen begins: up to a little above the arc's centre, clear of the loop
    top = _arc(0.55, 0.3, 0.4, 0.28, curl, -0.5)
    r = rng.uniform(0.22, 0.3)  # the loop, from a small one under a big hook to most of the lower half
    return [[*top, *_arc(0.5, 1.0 - r, 0.42, r, 0.5, -0.5, 18)]]


# Digits in the styles MNIST (US Census staff and high-school students) barely has, as pen strokes
# in a unit box (x right, y down); each label's function says which hands write it so.
WORLD_STYLES = types.MappingProxyType({
    "continental_one": (1, _continental_one),
    "footed_one": (1, _footed_one),
    "cursive_one": (1, _cursive_one),
    "crossed_seven": (7, _crossed_seven),
    "closed_four": (4, _closed_four),
    "straight_nine": (9, _straight_nine),
    "looped_two": (2, _looped_two),
    "hooked_six": (6, _hooked_six),
})


def style_digits(count: int, seed: int) -> LabelledImages:
    """`count` 28x28 uint8 digits in WORLD_STYLES, an equal share of each, drawn with a jittered pen
    at a random width, slant and stroke, then framed as predict frames a blob; and their labels."""
    makers = [lambda rng, strokes=strokes: _pen_digit(rng, strokes(rng)) for _, strokes in WORLD_STYLES.values()]
    labels = [label for label, _ in WORLD_STYLES.values()]
    rng = np.random.default_rng([seed % 2**32, 2])  # its own stream: the non-digits' are 0 and 1
    return _made(count, makers, labels, rng)


def _pen_digit(rng: np.random.Generator, strokes: list) -> np.ndarray:
    """Strokes drawn with a pen: a hand's width, height and slant, each point moved a little."""
    img, draw = _canvas(104, 72)  # room for the widest digit at the steepest slant, and a flag begun left of it
    # Slant up to 0.6 (31 degrees) to the right: school cursive leans that far, Russia's most of all.
    width, height, slant = rng.uniform(0.45, 0.8) * 48, rng.uniform(40, 52), rng.uniform(-0.1, 0.6)
    pen = int(rng.integers(3, 7))
    for points in strokes:
        moved = [(16 + (x + rng.normal(0, 0.03)) * width + (1 - y) * slant * height,
                  10 + (y + rng.normal(0, 0.03)) * height) for x, y in points]
        draw.line(moved, fill=255, width=pen, joint="curve")
    return np.asarray(img)


def training_non_digits(cfg: TrainConfig, sources: np.ndarray, fit_images: int) -> np.ndarray:
    """The non-digits a training run on `fit_images` images adds (cfg.non_digits of them in all,
    each made once), cut and paired from `sources`: the first NOT_DIGIT_SOURCES of the training
    part's digits (28x28 uint8; the validation part stays unseen)."""
    count = round(cfg.non_digits * fit_images / NOT_DIGIT_REPEATS)
    if not count:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return non_digits(count, sources[:NOT_DIGIT_SOURCES], cfg.seed).images


def training_styles(cfg: TrainConfig, fit_images: int) -> LabelledImages:
    """The digits in the world's styles a training run on `fit_images` images adds (cfg.styles of them)."""
    return style_digits(round(cfg.styles * fit_images), cfg.seed)


####################################################################################################
# Training #########################################################################################
####################################################################################################


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, verbose: int = 2,
          extra: Examples | None = None, made: np.ndarray | None = None,
          styled: LabelledImages | None = None) -> TrainResult:
    """Fit `model` on normalized images with Adam, a warmup+cosine schedule and writer-style
    augmentation, the recipe fitted to the run's length (for_length, returned as its config).
    `extra` (your own examples) joins the training part, repeated so that it makes up
    EXTRA_SHARE of it: a few dozen examples matter against 54,000, and are augmented too. The
    non-digits are `made` (by training_non_digits, on the same digits) or made here, and so are
    the digits in the world's styles, `styled` (by training_styles)."""
    keras = import_keras()
    import tensorflow as tf

    cfg = for_length(cfg)
    (x_fit, y_fit), (x_val, y_val) = split_validation(x, y, cfg.validation_split)
    if made is None:
        made = training_non_digits(cfg, np.round(x_fit[:NOT_DIGIT_SOURCES] * 255).astype(np.uint8), len(x_fit))
    if styled is None:
        styled = training_styles(cfg, len(x_fit))
    if len(styled.images):
        x_fit = np.concatenate([x_fit, normalize(styled.images)])
        y_fit = np.concatenate([y_fit.astype(np.int64), styled.labels])
    repeats = 0
    if extra is not None:
        repeats = max(1, round(EXTRA_SHARE * len(x_fit) / len(extra.images)))
        x_fit = np.concatenate([x_fit, *[normalize(extra.images)] * repeats])
        y_fit = np.concatenate([y_fit, *[extra.labels] * repeats])
    if len(made):
        x_fit = np.concatenate([x_fit, *[normalize(made)] * NOT_DIGIT_REPEATS])
        y_fit = np.concatenate([y_fit.astype(np.int64), np.full(len(made) * NOT_DIGIT_REPEATS, -1, np.int64)])
    stream, per_epoch = training_batches(x_fit, y_fit, cfg)
    total = per_epoch * cfg.epochs
    warmup = int(total * cfg.warmup_fraction)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, warmup_target=cfg.learning_rate, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=flat_on_non_digits,
        metrics=[keras.metrics.MeanMetricWrapper(answered_right, name="accuracy")],
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
        callbacks=[meter, keras.callbacks.TerminateOnNaN()],  # a diverged run stops at once
        shuffle=False,  # training_batches already reshuffles every epoch
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if not all_finite([np.asarray(losses, np.float64), *model.get_weights()]):
        raise UserError(f"training diverged (the loss became NaN or infinite in epoch {len(losses)}); "
                        "nothing was saved and the previous model file is untouched")
    steady = rates[1:] or rates  # the first epoch pays for graph compilation
    return TrainResult(
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        train_seconds=seconds,
        samples_per_second=statistics.median(steady),
        train_accuracy=evaluate(model, x_fit[y_fit >= 0], y_fit[y_fit >= 0]).accuracy,
        val_accuracy=evaluate(model, x_val, y_val).accuracy if len(x_val) else None,
        config=cfg,
        extra_repeats=repeats,
        non_digits=len(made),
        styled=len(styled.images),
    )


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float):
    """Hold out the last `fraction` of the samples, as Keras's validation_split does: none for 0,
    otherwise at least one, and never all of them."""
    n_val = min(max(round(len(x) * fraction), 1), len(x) - 1) if fraction > 0 and len(x) > 1 else 0
    cut = len(x) - n_val
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def training_batches(x: np.ndarray, y: np.ndarray, cfg: TrainConfig):
    """An endless tf.data stream of reshuffled training batches in other writers' styles.

    Each epoch is one random permutation cut into full batches. Every image gets its own
    rotation, slant (shear), width and height scaling and shift, composed into one affine
    transform and resampled once, and some images get bolder or thinner strokes, by XLA-compiled
    functions. (TensorFlow's ImageProjectiveTransformV3, the op inside Keras's RandomRotation,
    cannot be compiled by XLA and held training to 78,000 samples/s here.) Batches are restyled
    several at a time, about AUGMENT_CHUNK images per call, so that small batches do not pay the
    calls' overhead each. No prefetch: on a 2-core machine its thread steals a core from the
    matrix multiplies.
    """
    import tensorflow as tf

    n = len(x)
    batch = min(cfg.batch_size, n)
    per_epoch = n // batch
    images = tf.constant(x)
    labels = tf.constant(y)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=[cfg.seed, epoch])
        return tf.reshape(order[: per_epoch * batch], (per_epoch, batch))

    # Two compiled functions, not one: fused together, XLA recomputes the warp for each stroke width.
    warped = tf.function(lambda batch_images, draws: affine_warp(batch_images, writer_transforms(draws, cfg)),
                         jit_compile=True)
    stroked = tf.function(lambda batch_images, draws: bolder_or_thinner(batch_images, draws[:, 6], cfg),
                          jit_compile=True)

    def augmented(call, indices):
        index = tf.reshape(indices, [-1])
        draws = tf.random.stateless_uniform((tf.size(index), 7), [cfg.seed, call], -1.0, 1.0)
        restyled = stroked(warped(tf.gather(images, index), draws), draws)
        batches = (tf.reshape(restyled, [-1, batch, IMAGE_SIZE, IMAGE_SIZE]), tf.gather(labels, indices))
        return tf.data.Dataset.from_tensor_slices(batches)

    # Stateless random ops keyed on (seed, epoch) and (seed, call): the same seed gives the same
    # batches in every process, whatever else ran before.
    calls = tf.data.Dataset.counter().map(epoch_order).unbatch().batch(max(1, AUGMENT_CHUNK // batch))
    # Nothing in this stream runs in parallel, so there is nothing to autotune, and an autotuned
    # iterator's teardown waits for the tuner's next wake-up: fit returned up to 7 s late in 2 of 3 runs.
    untuned = tf.data.Options()
    untuned.autotune.enabled = False
    return calls.enumerate().flat_map(augmented).with_options(untuned), per_epoch


def writer_transforms(draws, cfg: TrainConfig):
    """Per image, from uniform draws in [-1, 1]: the affine map, from each output pixel to the
    point it is read from, of a rotation, a slant, independent x and y scaling and a shift about
    the image centre, as six numbers (x = a x' + b y' + c, y = d x' + e y' + f)."""
    import tensorflow as tf

    draws = tf.convert_to_tensor(draws, tf.float32)
    angle = draws[:, 0] * float(np.deg2rad(cfg.rotation))
    slant = draws[:, 1] * cfg.shear
    across, down = 1 + draws[:, 2] * cfg.scale, 1 + draws[:, 3] * cfg.scale
    cos, sin = tf.cos(angle), tf.sin(angle)
    a, b = cos / across, (cos * slant - sin) / down
    d, e = sin / across, (sin * slant + cos) / down
    centre = (IMAGE_SIZE - 1) / 2
    c = centre - a * centre - b * centre + draws[:, 4] * cfg.max_shift
    f = centre - d * centre - e * centre + draws[:, 5] * cfg.max_shift
    return tf.stack([a, b, c, d, e, f], axis=1)


def affine_warp(images, transforms):
    """Each 28x28 image resampled (bilinear; black off the image) at the points its transform
    sends the output pixels to."""
    import tensorflow as tf

    side = IMAGE_SIZE + 2  # with a black frame, where every point off the image lands
    rows, cols = (tf.reshape(t, [1, -1]) for t in tf.meshgrid(tf.range(IMAGE_SIZE, dtype=tf.float32),
                                                             tf.range(IMAGE_SIZE, dtype=tf.float32), indexing="ij"))
    a, b, c, d, e, f = (transforms[:, i : i + 1] for i in range(6))
    x, y = a * cols + b * rows + c, d * cols + e * rows + f
    x0, y0 = tf.floor(x), tf.floor(y)
    framed = tf.reshape(tf.pad(images, [[0, 0], [1, 1], [1, 1]]), [-1, side * side])

    def pixel(dy, dx):
        row = tf.clip_by_value(y0 + dy + 1, 0, side - 1)
        col = tf.clip_by_value(x0 + dx + 1, 0, side - 1)
        return tf.gather(framed, tf.cast(row * side + col, tf.int32), batch_dims=1)

    wx, wy = x - x0, y - y0
    mixed = (pixel(0, 0) * (1 - wx) * (1 - wy) + pixel(0, 1) * wx * (1 - wy)
             + pixel(1, 0) * (1 - wx) * wy + pixel(1, 1) * wx * wy)
    return tf.reshape(mixed, tf.shape(images))


def bolder_or_thinner(images, draws, cfg: TrainConfig):
    """Thicker strokes (a 2x2 grey dilation) for a `bolder` share of the images, thinner (a 2x2
    erosion) for a `thinner` share, chosen by draws in [-1, 1]."""
    import tensorflow as tf

    framed = tf.pad(images, [[0, 0], [0, 1], [0, 1]])
    corners = [framed[:, :-1, :-1], framed[:, 1:, :-1], framed[:, :-1, 1:], framed[:, 1:, 1:]]
    bolder = tf.reduce_max(tf.stack(corners), axis=0)
    thinner = tf.reduce_min(tf.stack(corners), axis=0)
    pick = draws[:, None, None]
    return tf.where(pick > 1 - 2 * cfg.bolder, bolder, tf.where(pick < -1 + 2 * cfg.thinner, thinner, images))


def flat_on_non_digits(y_true, y_pred):
    """The training loss: cross-entropy on digits; on non-digits (label -1), cross-entropy against
    the uniform distribution, weighted by NOT_DIGIT_WEIGHT (outlier exposure)."""
    from keras import ops

    labels = ops.cast(ops.reshape(y_true, [-1]), "int32")
    log_p = ops.log(ops.clip(y_pred, 1e-7, 1.0))
    own = ops.take_along_axis(log_p, ops.expand_dims(ops.maximum(labels, 0), 1), axis=1)[:, 0]
    return ops.where(labels >= 0, -own, -NOT_DIGIT_WEIGHT * ops.mean(log_p, axis=1))


def answered_right(y_true, y_pred):
    """Per image: a digit read as itself, or a non-digit (label -1) read as no digit."""
    from keras import ops

    labels = ops.cast(ops.reshape(y_true, [-1]), "int32")
    read = ops.cast(ops.argmax(y_pred, axis=1), "int32")
    flat = ops.max(y_pred, axis=1) < NOT_A_DIGIT
    return ops.cast(ops.where(labels >= 0, read == labels, flat), "float32")


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


####################################################################################################
# Evaluation and its figures #######################################################################
####################################################################################################


def evaluate(model: Network, x: np.ndarray, y: np.ndarray) -> Evaluation:
    """Accuracy, cross-entropy loss and predicted probabilities on normalized images."""
    keras = import_keras()
    proba = predict_proba(model, x)
    loss = keras.losses.sparse_categorical_crossentropy(y, proba)
    accuracy = float(np.mean(proba.argmax(axis=1) == y))
    return Evaluation(accuracy, float(np.mean(keras.ops.convert_to_numpy(loss))), proba)


def predict_proba(model: Network, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Class probabilities for normalized images: NumPy for a NumPyNetwork; for a Keras model, plain
    eager calls in chunks, which unlike model.predict() trace no new graph for each batch size."""
    if isinstance(model, NumPyNetwork):
        return model.probabilities(x)
    keras = import_keras()
    parts = [keras.ops.convert_to_numpy(model(x[i : i + chunk], training=False)) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10x10 counts: row = true digit, column = predicted digit."""
    pairs = np.asarray(labels, np.int64) * NUM_CLASSES + np.asarray(predicted, np.int64)
    return np.bincount(pairs, minlength=NUM_CLASSES * NUM_CLASSES).reshape(NUM_CLASSES, NUM_CLASSES)


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


def report(plt, ds: Dataset, model: Network, out_dir: Path, check: LabelledImages | None = None) -> dict:
    """Evaluate on the test set; save predictions, confusion and mistakes figures; return the metrics."""
    result = evaluate(model, normalize(ds.x_test), ds.y_test)
    proba = result.proba
    confusion = confusion_matrix(ds.y_test, proba.argmax(axis=1))
    save_figure(plot_predictions(plt, ds.x_test, ds.y_test, proba), out_dir / PREDICTIONS)
    save_figure(plot_confusion(plt, confusion), out_dir / CONFUSION)
    save_figure(plot_mistakes(plt, ds.x_test, ds.y_test, proba), out_dir / MISTAKES)
    return {
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "per_class": per_class_scores(confusion),
        "confusion_matrix": confusion.tolist(),
        "not_a_digit": not_digit_rates(model, ds.x_test, check or non_digits(NOT_DIGIT_CHECK, ds.x_test, 0, held_out=True)),
    }


def not_digit_rates(model: Network, digits: np.ndarray, check: LabelledImages) -> dict:
    """How often predict's NOT_A_DIGIT threshold turns away real digits (`digits`) and the `check`
    non-digits of each kind (images and kinds, made from these digits by a stream training never
    uses: non_digits(..., held_out=True))."""
    images, kinds = check
    rejected = ~is_digit(read_proba(model, images))
    return {"threshold": NOT_A_DIGIT, "digits_rejected": float(np.mean(~is_digit(read_proba(model, digits)))),
            "rejected_per_kind": {kind: float(rejected[kinds == k].mean()) for k, kind in enumerate(NOT_DIGIT_KINDS)}}


def pyplot(show: bool):
    """Import pyplot with a GUI backend only when windows are wanted and can open."""
    import matplotlib

    if not (show and display_available()):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(FIGURE_STYLE)
    return plt


def display_available() -> bool:
    """Whether a plot window could open: on Linux that needs an X11 or Wayland display."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def plot_predictions(plt, images: np.ndarray, labels: np.ndarray, proba: np.ndarray, count: int = 40):
    """A grid of test images titled 'predicted (true)'; mistakes in red with a red frame."""
    predicted = proba.argmax(axis=1)
    picks = sample_with_mistakes(labels, predicted, min(count, len(labels)), mistakes=count // 4)
    wrong = predicted[picks] != labels[picks]
    titles = [f"{predicted[i]} ({labels[i]})" + (" wrong" if bad else "") for i, bad in zip(picks, wrong)]
    tail = f"the last {int(wrong.sum())} are mistakes, in red" if wrong.any() else "no mistakes among them"
    return image_grid(plt, images[picks], titles, wrong, cols=10, cmap="gray_r",
                      title=f"NumNet on test images, titled predicted (true); {tail}")


def sample_with_mistakes(labels: np.ndarray, predicted: np.ndarray, count: int, mistakes: int) -> np.ndarray:
    """Indices of the first test images plus the first few the network gets wrong."""
    wrong = np.flatnonzero(predicted != labels)[:mistakes]
    first = [i for i in range(len(labels)) if i not in set(wrong)][: count - len(wrong)]
    return np.concatenate([np.asarray(first, dtype=int), wrong])


def plot_history(plt, history: dict):
    """Loss and accuracy per epoch, training and validation, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], "o-", ms=4, label="training (restyled digits and non-digits)")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "o-", ms=4, label="validation")
        if len(epochs) <= 10:  # whole epochs only, and room around a run of one or two
            ax.set_xticks(epochs)
            ax.set_xlim(0.5, len(epochs) + 0.5)
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
    guesses = proba[picks].argmax(axis=1)
    titles = [f"true {labels[i]}\nsaid {g} ({proba[i, g]:.0%})" for i, g in zip(picks, guesses)]
    title = f"The {len(picks)} most confident mistakes" if len(picks) else "No mistakes on the test set"
    return image_grid(plt, images[picks], titles, np.ones(len(picks), bool), cols=8, cmap="gray_r", title=title)


def image_grid(plt, images: np.ndarray, titles: list[str], wrong: np.ndarray, cols: int, cmap: str, title: str):
    """28x28 images in rows of `cols`, each under its title, the wrong ones titled in red with a
    red frame: one axes and one picture, not an axes per image (a tenth of the drawing time)."""
    from matplotlib.patches import Rectangle

    rows, lines = max(1, -(-len(images) // cols)), max([t.count("\n") + 1 for t in titles] or [1])
    cell_w, cell_h = IMAGE_SIZE + 8, IMAGE_SIZE + 8 + 9 * lines  # pixels of image, gap and title
    sheet = np.full((rows * cell_h, cols * cell_w), np.nan, np.float32)  # nan: background
    fig = plt.figure(figsize=(cols * cell_w / 26, rows * cell_h / 26 + 0.5))
    ax = fig.add_axes((0, 0, 1, rows * cell_h / 26 / fig.get_figheight()))
    for k, (image, text, bad) in enumerate(zip(images, titles, wrong)):
        top, left = (k // cols) * cell_h + cell_h - IMAGE_SIZE - 4, (k % cols) * cell_w + 4
        sheet[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE] = image
        color = "tab:red" if bad else "black"
        ax.text(left + IMAGE_SIZE / 2, top - 2, text, color=color, ha="center", va="bottom", fontsize=10)
        ax.add_patch(Rectangle((left - 1, top - 1), IMAGE_SIZE + 1, IMAGE_SIZE + 1, fill=False,
                               edgecolor=color, linewidth=2.5 if bad else 0.5))
    ax.imshow(np.ma.masked_invalid(sheet), cmap=cmap, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(title, y=1 - 0.15 / fig.get_figheight())
    return fig


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    return path


def show_figures(plt) -> None:
    """Open the figures in windows when the backend can; never blocks or fails headless."""
    if plt.get_backend().lower() != "agg":
        show_until_closed(plt)
    plt.close("all")


def show_until_closed(plt) -> None:
    """plt.show(), ended at once by Ctrl-C or SIGTERM as well as by closing the windows.

    A GUI event loop holds Python's signal handlers back until it next runs Python code: a timer
    runs some ten times a second, and a signal closes the windows; once the loop has returned, it
    is raised where the run is, as at any other moment."""
    caught: list[int] = []

    def close_all(signum, frame):
        caught.append(signum)
        plt.close("all")

    previous = {signum: signal.signal(signum, close_all) for signum in (signal.SIGINT, signal.SIGTERM)}
    timers = [plt.figure(num).canvas.new_timer(interval=100) for num in plt.get_fignums()]
    for timer in timers:
        timer.add_callback(lambda: None)
        timer.start()
    try:
        plt.show()
    finally:
        for timer in timers:
            timer.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise KeyboardInterrupt if caught[0] == signal.SIGINT else Terminated


class Terminated(BaseException):
    """SIGTERM (what `timeout`, systemd, Docker and CI send), raised where the run is, like Ctrl-C."""


####################################################################################################
# Files ############################################################################################
####################################################################################################


# The files this run has written (atomic_path), for what an interrupted run says: main() starts a
# fresh list for each run, and a thread of its own (serve's) records none.
WRITTEN: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("written", default=None)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds, and
    record it in the run's WRITTEN.

    A crash, Ctrl-C or full disk mid-write leaves the old file untouched and no temporary behind.
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
        if (written := WRITTEN.get()) is not None:
            written.append(path)
    except OSError as exc:  # disk full, permissions changed mid-run, ...
        raise UserError(f"{path}: could not write ({exc.strerror or exc}); the previous file is untouched") from exc
    finally:
        with contextlib.suppress(OSError):  # none was made where the folder could not be
            tmp.unlink(missing_ok=True)


def saved_before_stopping() -> str:
    """What an interrupted run tells about the files it had already written."""
    written = WRITTEN.get() or []
    if not written:
        return "nothing was overwritten"
    names = list(dict.fromkeys(str(path) for path in written))
    done = ", ".join(names) if len(names) <= 3 else f"{len(names)} files (the last {names[-1]})"
    return f"{done} had been saved; nothing else was overwritten"


def save_model(model: keras.Model, path: Path) -> None:
    """Save the network alone, its layers and weights: no compile config, which would name
    NumNet's own training loss and metrics, so that plain `keras.models.load_model` loads it."""
    network = type(model).from_config(model.get_config())  # the layers alone, uncompiled
    network.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        network.save(tmp)


def save_new_model(model: keras.Model, path: Path) -> str:
    """Save a trained model, unless the file already holds the very same weights; say which."""
    if not path.exists():
        save_model(model, path)
        return f"saved {path}"
    if same_weights(model, path):
        return f"{path}: the new weights are identical to the file's; left it untouched"
    save_model(model, path)
    shipped = path.resolve() == Path(__file__).resolve().parent / DEFAULT_MODEL
    return f"replaced {path}" + (f" (`git checkout -- {DEFAULT_MODEL}` brings back the model that came with NumNet)"
                                 if shipped else "")


def same_weights(model: keras.Model, path: Path) -> bool:
    """Whether a NumNet model file holds exactly `model`'s weights."""
    try:
        saved = load_reader(path)
    except UserError:
        return False
    if not isinstance(saved, NumPyNetwork):
        return False
    ours = model.get_weights()
    theirs = [array for pair in zip(saved.kernels, saved.biases) for array in pair]
    return len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def save_json(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def save_image(image, path: Path):
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return image


def check_writable_folder(folder: Path, what: str) -> None:
    """Make sure files can be written in `folder`, without creating it: the first file written
    makes it, so that a run that fails before writing anything leaves no empty folder behind."""
    existing = nearest_existing(folder)
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{folder}: cannot create the {what} folder: {existing} is a file, not a folder")
    try:  # a real write: permission bits say nothing for root or read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: the {what} folder is not writable ({exc.strerror or exc})") from exc


def nearest_existing(folder: Path) -> Path:
    """`folder` or the nearest of its parents that exists (or the top, where none does)."""
    return next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor or "."))


####################################################################################################
# The train and evaluate commands ##################################################################
####################################################################################################


def cmd_train(run: RunConfig, cfg: TrainConfig, extra: Examples | None = None) -> int:
    """Train on MNIST (and `extra`, your examples as the reader reads them: the command line reads
    them first, so that a bad folder fails before the slow part), evaluate, save and plot."""
    ds = load_dataset(run.data)
    print(f"data: {ds.describe()}", file=sys.stderr)
    fit_digits = split_validation(ds.x_train, ds.y_train, cfg.validation_split)[0][0]
    # The non-digits, for training and for the held-out check, are made by another process while
    # this one imports TensorFlow: 2.4 s saved.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=worker_start(), initializer=worker_setup) as pool:
        made = pool.submit(training_non_digits, cfg, fit_digits[:NOT_DIGIT_SOURCES], len(fit_digits))
        styled = pool.submit(training_styles, cfg, len(fit_digits))
        check = pool.submit(non_digits, NOT_DIGIT_CHECK, ds.x_test, seed=0, held_out=True)
        import_keras().utils.set_random_seed(cfg.seed)  # before the weights are initialized
        model = build_model()
        made, styled, check = made.result(), styled.result(), check.result()
    fit = train(model, normalize(ds.x_train), ds.y_train, cfg, verbose=1 if sys.stdout.isatty() else 2,
                extra=extra, made=made, styled=styled)
    model_saved = save_new_model(model, run.model)
    plt = pyplot(run.show)
    save_figure(plot_history(plt, fit.history), run.out_dir / HISTORY)
    metrics = train_metrics(fit, report(plt, ds, model, run.out_dir, check), ds, cfg, run)
    if extra:
        metrics["extra"] = {**extra.describe(), "repeats_per_epoch": fit.extra_repeats}
    save_json(metrics, run.out_dir / METRICS)
    val = "n/a" if metrics["val_accuracy"] is None else f"{metrics['val_accuracy']:.2%}"
    print(
        # Keras's epoch lines score the restyled training batches, non-digits included; this is the
        # training digits as given, read as the test set is: two figures, two names.
        f"training digits as given {metrics['train_accuracy']:.2%} (the epoch lines' accuracy is on restyled "
        f"batches) | validation {val} | "
        f"test {metrics['test_accuracy']:.2%} (loss {metrics['test_loss']:.4f})\n"
        f"trained {plural(cfg.epochs, 'epoch')} in {metrics['train_seconds']:.1f} s, "
        f"{metrics['samples_per_second']:,} samples/s\n"
        + (f"{describe_extra(metrics['extra'])}\n" if extra else "")
        + f"{model_saved}\nsaved {saved_list(run.out_dir, TRAIN_OUTPUTS)}"
    )
    show_figures(plt)
    return 0


def worker_setup() -> None:
    """In each worker: leave Ctrl-C to the parent, which ends the workers itself, and on Linux end
    with the parent even if it is killed outright (no orphan holds the caller's stdout open)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits main's handler: terminate() must end it
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_start():
    """How worker processes start: a fork, unless TensorFlow has run in this process (a test, a
    notebook), where a forked child can die on a lock one of its threads held: then from a clean
    server process."""
    return multiprocessing.get_context("forkserver" if "tensorflow" in sys.modules else "fork")


def train_metrics(fit: TrainResult, test: dict, ds: Dataset, cfg: TrainConfig, run: RunConfig) -> dict:
    """Everything metrics.json records about a training run."""
    return {
        **test,
        "train_accuracy": fit.train_accuracy,
        "val_accuracy": fit.val_accuracy,
        "epochs": cfg.epochs,
        "train_seconds": round(fit.train_seconds, 2),
        "samples_per_second": round(fit.samples_per_second),
        "seed": cfg.seed,
        "data": ds.describe(),
        "canonical_mnist": ds.canonical,
        "config": dataclasses.asdict(fit.config),
        "augmentation": {k: getattr(fit.config, k) for k in AUGMENTATION},
        "non_digits": {"images": fit.non_digits, "repeats": NOT_DIGIT_REPEATS, "kinds": list(NOT_DIGIT_KINDS),
                       "weight": NOT_DIGIT_WEIGHT,
                       "letters": LETTERS, "fonts": list(LETTER_FONTS)},
        "styles": {"share": fit.config.styles, "images": fit.styled, "kinds": list(WORLD_STYLES)},
        "model": str(run.model),
        **library_versions(),
        "history": fit.history,
    }


def describe_extra(extra: dict) -> str:
    folders = ", ".join(f"{count} from {folder}" for folder, count in extra["folders"].items())
    per_digit = " ".join(f"{d}:{n}" for d, n in enumerate(extra["per_digit"]))
    return (f"your examples: {extra['examples']} ({folders}; per digit {per_digit}), each seen "
            f"{extra['repeats_per_epoch']}x per epoch; {extra['skipped']} files skipped")


def cmd_evaluate(run: RunConfig, images: Sequence[Path], scorer: FolderScorer) -> int:
    """Score a saved model on MNIST's test set, and on labelled folders of your images, each read
    by `scorer`: the reader's score_folder (part 2), handed in by the command line."""
    model = load_model(run.model)
    metrics: dict = {"model": str(run.model)}
    plt = None
    if run.data is not None or not images:  # the MNIST test set, unless only your folders were asked for
        ds = load_dataset(run.data)
        print(f"data: {ds.describe()}", file=sys.stderr)
        plt = pyplot(run.show)
        test = report(plt, ds, model, run.out_dir)
        metrics.update(test, data=ds.describe(), canonical_mnist=ds.canonical)
        print(format_report(test["per_class"], np.array(test["confusion_matrix"])), end="\n\n")
        print(f"test accuracy {test['test_accuracy']:.2%} (loss {test['test_loss']:.4f}) on {len(ds.x_test):,} images")
    images = list(dict.fromkeys(images))  # a folder given twice is scored once
    if images:
        metrics["folders"] = {str(folder): scorer(model, folder, run.out_dir, figure)
                              for folder, figure in zip(images, mistakes_figures(images))}
        for folder, score in metrics["folders"].items():
            print(format_folder_score(Path(folder), score))
    save_json({**metrics, **library_versions(), **training_history(run.out_dir)}, run.out_dir / METRICS)
    saved = [*(EVALUATE_OUTPUTS if plt else [METRICS]),
             *(s["mistakes_figure"] for s in metrics.get("folders", {}).values() if "mistakes_figure" in s)]
    print(f"saved {saved_list(run.out_dir, saved)}")
    if plt:
        show_figures(plt)
    return 0


def mistakes_figures(folders: Sequence[Path]) -> list[str]:
    """The names of the figures of labelled folders' misread images, mistakes_<folder>.png, each
    its own: a second folder of the same name (alice/digits, bob/digits) gets mistakes_digits-2.png."""
    names: list[str] = []
    for folder in folders:
        stem = f"mistakes_{folder.resolve().name}"
        names.append(next(name for n in itertools.count(1)
                          if (name := f"{stem}{'' if n == 1 else f'-{n}'}.png") not in names))
    return names


def format_folder_score(folder: Path, score: dict) -> str:
    """A folder's accuracy, then per label (the first 20 labels)."""
    labels = list(score["per_label"].items())
    per = "  ".join(f"{label}: {s['accuracy']:.0%} of {s['images']}" for label, s in labels[:20])
    more = f"  (+{len(labels) - 20} more in metrics.json)" if len(labels) > 20 else ""
    failed = f", {score['failed']} with no digit found" if score["failed"] else ""
    return f"{folder}: {score['right']}/{score['images']} = {score['accuracy']:.1%} right{failed}\n  per label: {per}{more}"


def training_history(out_dir: Path) -> dict:
    """The training history of the metrics.json being replaced, where its history.png stays beside
    it: {"history": ...}, or {} when there is none to keep."""
    try:
        if (out_dir / HISTORY).is_file():
            return {"history": json.loads((out_dir / METRICS).read_text())["history"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {}


def library_versions() -> dict:
    import tensorflow as tf

    keras = import_keras()
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def saved_list(out_dir: Path, names: Sequence[str]) -> str:
    return ", ".join(str(out_dir / name) for name in names)


def preflight(run: RunConfig, writes_model: bool) -> None:
    """Check every path a command will use before any slow work starts."""
    if run.data is not None:
        data = Path(run.data)
        if not (data.is_file() or data.is_dir()):
            raise UserError(missing_or_special(data))
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


####################################################################################################
# Digits the MNIST way: what training and the reader share #########################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class Framing:
    """How a digit is framed as MNIST framed its digits (fit_digit)."""

    box: int = 20  #: pixels: MNIST fits each digit in 20x20, then centres its mass in 28x28
    stroke: float = 2.2  #: pixels of the 20x20 box: MNIST's typical stroke width
    thin: float = 0.75  #: a stroke narrower than this share of `stroke` (a fine pen) is thickened towards it
    supersample: int = 3  #: thickened at this many times the final size, where a filter step is a third of a pixel
    max_steps: int = 4  #: ... by at most this many steps (a hairline grows to about MNIST's width)
    solid_percentile: float = 70  #: a digit's ink above this percentile of its own is full white, as MNIST's cores are


FRAMING = Framing()


def fit_digit(ink: np.ndarray, mask: np.ndarray, stroke: float | None = None) -> np.ndarray:
    """One cropped digit -> MNIST's 28x28 uint8: fit in 20x20 keeping aspect, stroke cores solid
    and strokes thickened to MNIST's width, centre of mass in the middle. `stroke` is the mask's
    mean_stroke_width, where the caller has measured it already."""
    from PIL import Image, ImageFilter

    scale = FRAMING.box / max(ink.shape)
    solid = max(float(np.percentile(ink[mask], FRAMING.solid_percentile)), 1e-6)  # 1e-6: never divide by nought
    img = Image.fromarray((np.where(mask, np.clip(ink / solid, 0, 1), 0) * 255).astype(np.uint8))
    width_in_box = (mean_stroke_width(mask) if stroke is None else stroke) * scale
    if width_in_box < FRAMING.stroke * FRAMING.thin:
        # Thicken at 3x the final size, where one filter step is a third of a final pixel.
        mid = FRAMING.supersample * FRAMING.box / max(ink.shape)
        img = _resized(img, (max(1, round(img.width * mid)), max(1, round(img.height * mid))), Image.Resampling.BOX)
        # A 3x3 maximum widens a stroke by a pixel on each side: two pixels of the supersampled image a step.
        steps = int(np.clip(round((FRAMING.stroke - width_in_box) * FRAMING.supersample / 2), 1, FRAMING.max_steps))
        for _ in range(steps):
            img = img.filter(ImageFilter.MaxFilter(3))
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    patch = np.asarray(_resized(img, size, Image.Resampling.LANCZOS), dtype=np.float32)
    patch = np.clip(patch / max(patch.max(), 1), 0, 1)
    return centre_of_mass_frame(patch)


def _resized(img, size: tuple[int, int], resample):
    """Pillow's resize as its two passes, across and then down: the pixels do not depend on which
    order a Pillow version picks (13 goes down first for tall shapes), and the exported page's
    JavaScript computes the same."""
    if img.width != size[0]:
        img = img.resize((size[0], img.height), resample)
    return img.resize(size, resample) if img.height != size[1] else img


def ink_crop(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the box round a mask's pixels (it has some)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def mean_stroke_width(mask: np.ndarray) -> float:
    """Average stroke width of a binary shape: its area over half its perimeter (the pixels with
    a side open: those an erosion takes away)."""
    from scipy import ndimage as ndi

    area = mask.sum()
    perimeter = area - ndi.binary_erosion(mask).sum()
    return float(2 * area / max(perimeter, 1))


def squared_axes(mask: np.ndarray) -> np.ndarray:
    """A shape's squared axis lengths, shorter first, up to one factor: the eigenvalues of the
    covariance of its pixels' coordinates (a straight stroke has one far longer than the other)."""
    return np.linalg.eigvalsh(np.cov(np.nonzero(mask), bias=True))


def centre_of_mass_frame(patch: np.ndarray) -> np.ndarray:
    """Place `patch` in a 28x28 frame with its centre of mass at the frame's centre."""
    from scipy import ndimage as ndi

    com_r, com_c = ndi.center_of_mass(patch) if patch.sum() > 0 else ((patch.shape[0] - 1) / 2, (patch.shape[1] - 1) / 2)
    top = int(round((IMAGE_SIZE - 1) / 2 - com_r))
    left = int(round((IMAGE_SIZE - 1) / 2 - com_c))
    top = min(max(top, 0), IMAGE_SIZE - patch.shape[0])
    left = min(max(left, 0), IMAGE_SIZE - patch.shape[1])
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return np.round(frame * 255).astype(np.uint8)


def read_proba(model: Network, digits: np.ndarray) -> np.ndarray:
    """Class probabilities for digits cut from your images (28x28 uint8), averaged over a few
    small changes a writer or a camera could have made (test-time augmentation: 1-pixel shifts,
    an 8 degree tilt either way, a bolder and a thinner stroke), so that one accident of framing
    does not decide the answer. MNIST's own test set is scored without them."""
    parts = []
    for start in range(0, len(digits), 1024):  # ten variants of 1,024 digits: 31 MB at a time
        variants = reading_variants(normalize(digits[start : start + 1024]))
        proba = predict_proba(model, np.concatenate(variants))  # all ten in one pass: three matrix products
        parts.append(proba.reshape(len(variants), -1, NUM_CLASSES).mean(axis=0))
    return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)


def reading_variants(x: np.ndarray) -> list[np.ndarray]:
    """`x` (N x 28 x 28 floats) and its nine test-time variants: shifted a pixel each way, tilted
    TTA_TILT degrees either way, and with the bolder and thinner strokes training makes."""
    framed = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    shifted = [framed[:, 1 + dy : 1 + dy + IMAGE_SIZE, 1 + dx : 1 + dx + IMAGE_SIZE]
               for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    flat = x.reshape(len(x), -1)
    tilted = []
    for angle in (TTA_TILT, -TTA_TILT):
        taps, weights = tilt_taps(angle)
        tilted.append(np.einsum("njk,jk->nj", flat[:, taps], weights).reshape(x.shape))
    corners = [framed[:, 1 + dy : 1 + dy + IMAGE_SIZE, 1 + dx : 1 + dx + IMAGE_SIZE] for dy in (0, 1) for dx in (0, 1)]
    return [x, *shifted, *tilted, np.max(corners, axis=0), np.min(corners, axis=0)]


def is_digit(proba: np.ndarray) -> np.ndarray:
    """Per row of class probabilities: whether the network reads a digit there at all."""
    return proba.max(axis=-1) >= NOT_A_DIGIT


####################################################################################################
# Fast kernels #####################################################################################
####################################################################################################


# Each kernel below equals the library call its docstring names (tests/test_part1_kernels.py holds
# each to it) and is here because it saves at least a third of its stage's time, measured on real
# and generated pages (`python tests/helpers/benchmark.py --kernels`, docs/speed.md); everywhere
# else the file calls the libraries. They sit in part 1 because training's report reads with
# tilts too; the running filters serve part 2.


@functools.cache
def tilt_taps(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of a 28x28 image turned by `angle` degrees about its centre is read from:
    four pixels of the flattened image and their bilinear weights (all 0 off the image), exactly as
    scipy.ndimage.rotate(order=1, reshape=False, prefilter=False) reads them, so that one gather
    tilts a whole batch: it saves 65% of reading 1,000 digits with their ten variants."""
    turn = np.deg2rad(angle)
    cos, sin, centre = np.cos(turn), np.sin(turn), (IMAGE_SIZE - 1) / 2
    rows, cols = np.divmod(np.arange(IMAGE_SIZE * IMAGE_SIZE), IMAGE_SIZE)
    r = cos * (rows - centre) + sin * (cols - centre) + centre
    c = -sin * (rows - centre) + cos * (cols - centre) + centre
    inside = (r >= 0) & (r <= IMAGE_SIZE - 1) & (c >= 0) & (c <= IMAGE_SIZE - 1)
    r0, c0 = (np.clip(np.floor(v), 0, IMAGE_SIZE - 2) for v in (r, c))
    dr, dc = r - r0, c - c0
    top, left = r0 * IMAGE_SIZE, c0
    taps = np.stack([top + left, top + IMAGE_SIZE + left, top + left + 1, top + IMAGE_SIZE + left + 1], axis=1)
    weights = np.stack([(1 - dr) * (1 - dc), dr * (1 - dc), (1 - dr) * dc, dr * dc], axis=1) * inside[:, None]
    return taps.astype(np.intp), weights.astype(np.float32)


def _running_down(array: np.ndarray, size: int, op, origin: int = 0, fill=None) -> np.ndarray:
    """The running minimum or maximum (`op` np.minimum or np.maximum) over windows of `size`
    down a 2-D array's columns: exactly scipy.ndimage's minimum_filter1d or maximum_filter1d
    along axis 0 (mode 'reflect', or 'constant' with `fill` where given), as log2(size)
    elementwise steps, each window the op of two overlapping power-of-two spans: it saves 65% of
    taking out a page's rules."""
    before = size // 2 + origin
    after = size - 1 - before
    if fill is not None:
        edge = np.full((1, *array.shape[1:]), fill, array.dtype)
        spans = np.concatenate([edge.repeat(before, 0), array, edge.repeat(after, 0)])
    elif max(before, after) <= len(array):  # the edge mirrored (scipy's "reflect"), as one C-ordered copy
        spans = np.concatenate([array[:before][::-1], array, array[::-1][:after]])
    else:  # a window longer than the array mirrors it again and again
        spans = np.ascontiguousarray(np.pad(array, [(before, after), (0, 0)], mode="symmetric"))
    span = 1
    while 2 * span <= size:  # spans[i] holds the op over the `span` rows from i
        spans = op(spans[:-span], spans[span:])
        span *= 2
    return op(spans[: len(array)], spans[size - span : size - span + len(array)])


def _running(array: np.ndarray, size: int, axis: int, op, origin: int = 0, fill=None) -> np.ndarray:
    """The running minimum or maximum along `axis` (see _running_down)."""
    if axis == 0:
        return _running_down(array, size, op, origin, fill)
    return _running_down(array.T, size, op, origin, fill).T


def _square_running(image: np.ndarray, size: int, op, origin: int = 0) -> np.ndarray:
    """The running minimum or maximum over size x size windows (scipy.ndimage's minimum_filter or
    maximum_filter with `size`), by _running_down down the columns, then down the rows: it saves 37%
    of the paper estimate and 40% of finding the ink near a page's edges."""
    return _running_down(_running_down(image, size, op, origin).T, size, op, origin).T


def _mirrored(size: int) -> int:
    """The origin of a mirrored window of `size`, as scipy's closings and openings dilate with
    one: an even window starts a pixel later."""
    return -1 if size % 2 == 0 else 0


def _closing(image: np.ndarray, size: int) -> np.ndarray:
    """scipy.ndimage.grey_closing(image, size=size): it saves 37% of the paper estimate."""
    return _square_running(_square_running(image, size, np.maximum, _mirrored(size)), size, np.minimum)


def _opening(image: np.ndarray, size: int) -> np.ndarray:
    """scipy.ndimage.grey_opening(image, size=size): it saves 51% of the paper estimate of light
    ink (chalk on a board)."""
    return _square_running(_square_running(image, size, np.minimum), size, np.maximum, _mirrored(size))


def _closed_along(mask: np.ndarray, size: int, axis: int) -> np.ndarray:
    """scipy.ndimage.binary_closing(mask) by a line of `size` pixels along `axis`, by _running:
    beyond the page is no ink, as there."""
    dilated = _running(mask, size, axis, np.maximum, _mirrored(size), fill=False)
    return _running(dilated, size, axis, np.minimum, fill=False)


def opened(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels on runs of ink at least `length` long along `axis`: scipy.ndimage's
    minimum_filter1d, then its maximum_filter1d, along `axis`."""
    return _running(_running(mask, length, axis, np.minimum), length, axis, np.maximum)


####################################################################################################
####################################################################################################
# PART 2: READING YOUR HANDWRITING #################################################################
####################################################################################################
####################################################################################################


####################################################################################################
# A page in, its digits out ########################################################################
####################################################################################################


def find_digits(gray: np.ndarray, look: Look | None = None) -> list[list[Digit]]:
    """A grayscale page (floats in [0, 1]) -> its lines of digits, top to bottom, each left to
    right, as MNIST-style 28x28 uint8 images; [] when there is no digit. `look` sets the paper
    estimate's window and whether the light may curve (FIRST_LOOK where none is given)."""
    gray, noise = smoothed(gray)
    ink, off_paper = ink_map(gray, look or FIRST_LOOK)
    mask = remove_page_rules(ink_mask(ink, noise))  # first: rules across the page would hide the digits' size
    labels, blobs = ink_blobs(mask)
    blobs = away_from_edges(blobs, labels, off_paper)  # a page edge with its ragged bits, a band, a table
    if not blobs:
        return []
    height = digit_height(blobs, labels)
    kept = labelled(labels, [label for b in blobs for label in b.labels])
    unlined = remove_lines(kept, round(RULES.line * height), round(RULES.line * height))
    if unlined is not kept:
        labels, blobs = ink_blobs(unlined)
    blobs = [b for b in blobs if max(b.height, b.width) >= BLOBS.speck * height]
    blobs = [b for b in blobs if not is_clutter(b, labels, height, blobs)]
    if not blobs:
        return []
    height = digit_height(blobs, labels)
    digits = [b for b in merge_parts(blobs, height, labels) if b.height >= BLOBS.min_height * height]
    return [read_line(line, labels, ink) for line in group_lines(digits)]


def read_page(gray: np.ndarray, name: str, look: Look | None = None) -> Reading:
    """A grayscale page -> its Reading, or a blank page's. A picture no larger than CHOICE.small_picture
    is one digit's picture, not a page: all its ink read as one digit (`whole`) is a reading too,
    for the network to choose."""
    lines = find_digits(gray, look)
    whole = whole_digit(gray) if max(gray.shape) <= CHOICE.small_picture else None
    if not lines and whole is None:
        return Reading(name, error=f"{name}: no digit found (blank or empty page)", blank=True)
    return Reading(name, lines or [[whole]], gray.shape, whole=whole if lines else None)


def whole_digit(gray: np.ndarray) -> Digit | None:
    """All the ink of a digit-sized picture as one digit, with none of a page's rules (at 28 pixels
    a stem is 80% of the picture, and a digit cropped tight touches the border); only ink running
    along a side (a strip of background) is left out. None when there is no ink."""
    gray, noise = smoothed(gray)
    ink, _ = ink_map(gray)
    labels, blobs = ink_blobs(ink_mask(ink, noise))
    blobs = [b for b in blobs if not hugs_border(b, labels)]
    if not blobs:
        return None
    return cut_digit(functools.reduce(Blob.join, blobs), labels, ink)


def read_line(line: list[Blob], labels: np.ndarray, ink: np.ndarray) -> list[Digit]:
    """One line of blobs -> its digits, touching digits cut apart; each next to a piece it could
    form one digit with carries that joined reading too, and each as wide as two digits that
    touch carries the reading of its two pieces (slanted_cut)."""
    height = line_height(line)
    digit_width = float(np.median([b.width for b in line])) if len(line) >= TWO.few_digits else None
    pieces, apart = [], {}
    for blob in line:
        mask, box = np.zeros(labels.shape, bool), np.s_[blob.top : blob.bottom, blob.left : blob.right]
        mask[box] = labelled(labels[box], blob.labels)  # a blob's pixels lie in its box
        for piece in split_touching(blob, mask, height, digit_width):
            if piece.width >= TWO.maybe_two * piece.height and (cut := slanted_cut(piece, mask, height)):
                region = np.s_[piece.top : piece.bottom, piece.left : piece.right]
                apart[len(pieces)] = tuple(masked_digit(part, ink[region], piece.top, piece.left) for part in cut)
            pieces.append(piece)
    digits = []
    for n, (piece, after) in enumerate(itertools.zip_longest(pieces, pieces[1:])):
        joined = after and piece.join(after)
        could_be_one = joined is not None and joined.width <= TWO.one_digit_width * max(height, joined.height)
        digits.append(dataclasses.replace(cut_digit(piece, labels, ink), apart=apart.get(n),
                                          with_next=cut_digit(joined, labels, ink) if could_be_one else None))
    return digits


def cut_digit(blob: Blob, labels: np.ndarray, ink: np.ndarray) -> Digit:
    """The blob's own ink (not a neighbour's overhang), cropped to its pixels and fit to 28x28."""
    region = np.s_[blob.top : blob.bottom, blob.left : blob.right]
    return masked_digit(labelled(labels[region], blob.labels), ink[region], blob.top, blob.left)


def masked_digit(mask: np.ndarray, ink: np.ndarray, top: int, left: int) -> Digit:
    """The ink under `mask` (both a region of the page whose corner is at `top`, `left`), cropped
    to its pixels and fit to 28x28."""
    crop = ink_crop(mask)
    box = (top + crop[0].start, top + crop[0].stop, left + crop[1].start, left + crop[1].stop)
    stroke = mean_stroke_width(mask[crop])
    return Digit(tuple(int(v) for v in box), fit_digit(ink[crop], mask[crop], stroke), stroke)


def preprocess(gray: np.ndarray) -> list[np.ndarray]:
    """A grayscale page (floats in [0, 1]) -> one MNIST-style 28x28 uint8 image per digit, in
    reading order; [] when no digit is found. Feed the result through normalize(), as training does."""
    return [digit.image for line in find_digits(gray) for digit in line]


@dataclasses.dataclass(frozen=True)
class Blob:
    """Connected ink, or several pieces of one digit: its labels in the page's label image and its
    box (top, bottom, left, right), in page pixels."""

    labels: frozenset[int]
    top: int
    bottom: int
    left: int
    right: int
    area: int  # ink pixels
    straight: bool = False  # a straight stroke: a ruled line, an underline, a column rule, or a 1

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def join(self, other: Blob) -> Blob:
        return Blob(self.labels | other.labels, min(self.top, other.top), max(self.bottom, other.bottom),
                    min(self.left, other.left), max(self.right, other.right), self.area + other.area)


@dataclasses.dataclass(frozen=True, eq=False)  # each Digit is its own: a key to its probabilities
class Digit:
    """One digit found on a page: its box (top, bottom, left, right) and the 28x28 image made of it;
    `with_next`, where this blob and the next on its line could be one digit (a 4 in two strokes,
    a digit cut in two), that reading of them, for the network to choose (see chosen_lines), and
    `apart`, where it is as wide as two digits touching, the reading of its two pieces."""

    box: tuple[int, int, int, int]
    image: np.ndarray
    stroke: float  # its strokes' mean width, in page pixels
    with_next: Digit | None = None
    apart: tuple[Digit, Digit] | None = None  # its two pieces, where it could be two digits touching


@dataclasses.dataclass(frozen=True)
class Reading:
    """One file or picture read: its lines of digits, or why there are none.

    `size` is the working image's height and width (digit boxes are in its pixels); `gray` is
    that image itself for a picture read from memory, while a file is read again when predict.png
    draws it (picture()), so that a folder's readings carry no pages. `whole` is the digit-sized
    picture's ink read as one digit, an alternative reading (see read_page). `proba` holds the network's
    probabilities, one row per digit in reading order, once chosen_readings has chosen. `error`
    says why nothing can be read; `blank` marks an error that is only "no digit found"."""

    file: str
    lines: list[list[Digit]] = dataclasses.field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    gray: np.ndarray | None = None
    whole: Digit | None = None
    proba: np.ndarray | None = None
    error: str | None = None
    blank: bool = False

    @property
    def digits(self) -> list[Digit]:
        """The digits of every line, in reading order."""
        return [digit for line in self.lines for digit in line]

    @property
    def scale(self) -> float:
        """The size of the picture drawn in predict.png over the working image's."""
        return min(1.0, SHEET_PAGE[0] / max(self.size[1], 1), SHEET_PAGE[1] / max(self.size[0], 1))

    def picture(self) -> np.ndarray:
        """The picture as predict.png draws it: a small uint8 copy of the working image (read
        from the file again, blank where it can no longer be read)."""
        gray = self.gray
        if gray is None:
            with contextlib.suppress(UserError):  # gone or no longer readable: drawn blank
                gray = load_image(Path(self.file))
        if gray is None or gray.shape != self.size:  # ... or changed since it was read
            gray = np.ones(self.size, np.float32)
        return thumbnail(gray, self.scale)

    @functools.cached_property
    def kept(self) -> np.ndarray:
        """Per blob of a chosen reading, in reading order: whether it counts as a digit (the
        network reads one there, and it is not a letter of a word: words_left_out)."""
        return words_left_out(self.lines, is_digit(self.proba))

    @property
    def unreadable(self) -> bool:
        """The file itself failed (missing, not an image, too large), not merely blank."""
        return self.error is not None and not self.blank


####################################################################################################
# Images in ########################################################################################
####################################################################################################

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif"})
# The only decoders Pillow may use, whatever a file's name or first bytes claim: each decodes in this
# process. EPS, PS and PDF are handed to Ghostscript by Pillow, a program that runs what the file says.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "HEIF")  # JPEG includes phones' MPO
DECODE_PIXELS = 100_000_000  # an image decoding to more pixels than this (after JPEG's reduced decode) is refused
# Pillow's modes of more than 8 bits a pixel, and the value that is white in each.
WIDE_MODES = types.MappingProxyType(
    {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0})
WORK_SIDE = 1000  # images are shrunk to at most this many pixels a side before any other work

MID_GREY = 127  # of 0-255: a pixel above it is more opaque than clear, or light rather than dark


class UnreadableImage(UserError):
    """A file that is no image NumNet decodes (serve answers it 415)."""


def read_digits(path: Path, look: Look | None = None) -> Reading:
    """Load and preprocess one file; a file that cannot be read is a Reading with its error."""
    try:
        return read_page(load_image(path), str(path), look)
    except UserError as exc:
        return Reading(str(path), error=str(exc))


def read_array(model: Network, gray: np.ndarray, name: str) -> tuple[Reading, dict]:
    """A page already in memory (a drawing, an upload) read exactly as predict reads a file, the
    second look included: the chosen reading and its JSON-ready answer."""
    read = lambda look=FIRST_LOOK: dataclasses.replace(read_page(gray, name, look), gray=gray)  # noqa: E731
    reading = surest_readings(model, [read()], lambda _, looks: [read(look) for look in looks])[0]
    return reading, json_answer(reading)


def load_image(path: Path) -> np.ndarray:
    """Open an image file as grayscale floats in [0, 1] (1 = white), downscaled early."""
    if not path.is_file():  # a pipe or a device would block or never end: only regular files are read
        raise UserError(f"{path}: not a regular file (a folder, a pipe or a device?)" if path.exists()
                        else f"{path}: no such file")
    return decoded(path, str(path), max_pixels=DECODE_PIXELS)[0]


def decoded(source, name: str, max_pixels: int = DECODE_PIXELS) -> tuple[np.ndarray, int]:
    """An image file or file-like object -> grayscale floats in [0, 1] (1 = white), at most
    WORK_SIDE pixels a side, and the longer side of the image as stored. JPEGs decode at reduced
    size; an image that would still decode to more than `max_pixels` is refused before it is decoded."""
    with opened_image(source, name) as img:
        side = max(img.size)
        img.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG decodes at reduced size: fast, bounded memory
        if img.width * img.height > max_pixels:
            raise UserError(f"{name}: image is too large to open safely ({img.width}x{img.height} pixels; "
                            f"the limit is {max_pixels / 1e6:.0f} megapixels)")
        return _working_gray(img), side


@contextlib.contextmanager
def opened_image(source, name: str):
    """Pillow's image of a file or file-like object, opened only by the decoders in IMAGE_FORMATS
    (no format that hands the file to another program, as EPS and PDF do), its Pillow warnings
    kept quiet: NumNet says what is wrong in its own words."""
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    Image.init()  # every plugin imported (none runs anything on import), so that each named format is known
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and palette notes
            with Image.open(source, formats=IMAGE_FORMATS) as img:
                yield img
    except Image.DecompressionBombError as exc:
        raise UserError(f"{name}: image is too large to open safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage(f"{name}: not a readable image (not PNG, JPEG, GIF, BMP, WebP, TIFF or HEIC)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(f"{name}: not a readable image ({exc})") from exc


@functools.cache
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()  # iPhones' HEIC photos: decoded in-process by libheif


def _working_gray(img) -> np.ndarray:
    """A Pillow image -> grayscale floats in [0, 1], turned upright and shrunk to WORK_SIDE; a
    large one is shrunk before any copy of it at full size in floats is made."""
    from PIL import Image, ImageOps

    ImageOps.exif_transpose(img, in_place=True)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img if img.mode == "RGBA" else img.convert("RGBA")
        if max(img.size) > WORK_SIDE:  # shrunk before its transparency is flattened
            img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
        img = flatten_alpha(img)
    white = WIDE_MODES.get(img.mode)
    if white is not None:  # a 16-bit scan at its own contrast: convert("L") would clip it
        img = img.convert("F")
    elif img.mode != "L":
        img = img.convert("L")
    if max(img.size) > WORK_SIDE:
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    if white is not None:
        return np.clip(np.asarray(img, np.float32) / np.float32(white), 0, 1)
    return np.asarray(img, np.float32) / 255.0  # in [0, 1] already


def flatten_alpha(rgba):
    """Put a transparent drawing on a background that contrasts with its ink."""
    from PIL import Image

    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    ink = gray[alpha > MID_GREY]
    background = 0 if ink.size and ink.mean() > MID_GREY else 255
    return Image.composite(rgba, Image.new("RGBA", rgba.size, (background,) * 3 + (255,)), rgba.getchannel("A"))


####################################################################################################
# Paper and ink ####################################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class InkLimits:
    """Where the paper is and where the ink is (smoothed, ink_map, ink_mask). Brightness is on a
    0-1 scale; windows are shares of the page's longer side."""

    noisy: float = 0.01  #: pages with more pixel noise than this (standard deviation) are smoothed
    smoothing: float = 0.8  #: pixels: the standard deviation of the Gaussian that smooths a noisy page's grain
    noise_per_mad: float = 1.4826  #: a Gaussian's standard deviation over its median absolute deviation
    window_px: int = 3  #: pixels: the paper window is never narrower than a 3x3 square
    sample_step: int = 4  #: pixels: paper changes slowly, so every 4th pixel each way is plenty to measure it
    paper_window: float = 0.4  #: share of the page: the first look's paper window, wider than any stroke
    off_paper: float = 0.3  #: background darker than this share of the paper is no paper: a table, a scanner's band
    paper_near: float = 0.05  #: pixels this near the fitted light are paper, for the next fit (light_slope)
    light_paper: float = 0.25  #: ink is light (chalk) only where less than this share of the page is wide bright paper
    min_contrast: float = 0.08  #: ink fainter than this against its paper is no ink
    noise_low: float = 6  #: in the page's pixel noise: a pixel this far above the paper may be ink ...
    noise_high: float = 12  #: ... and a piece of ink holds at least one pixel this far above it
    seed_contrast: float = 1.5  #: ... or seed_contrast x min_contrast, on a clean page
    peak_px: int = 3  #: pixels: a piece's peak is its brightest 3x3 mean, not one noisy pixel
    faint: float = 0.3  #: share of the page's strongest ink: fainter pieces are smudges or faint rules
    ink_core: float = 0.35  #: share of a piece's own strongest ink: its pixels above this are its stroke


INK = InkLimits()
# The pixels the paper is measured on: every INK.sample_step-th each way (paper changes slowly).
PAPER_SAMPLE = np.s_[:: INK.sample_step, :: INK.sample_step]


@dataclasses.dataclass(frozen=True)
class Look:
    """How a page is looked at: the paper estimate's window, as a fraction of the page's longer
    side, and whether the light across the paper may curve (a lamp's fall-off, dark corners) or
    only slope. The first look is broad and plain; a second look (second_looks) is narrower and
    lets the light curve, which a tight crop full of ink could mislead at first sight."""

    window: float = INK.paper_window
    curved_light: bool = False


FIRST_LOOK = Look()


def smoothed(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """A noisy photo with its pixel noise smoothed away (a small Gaussian), so that faint strokes
    stand out and the paper estimate does not follow the noise; a clean scan as it is, so that
    its thin strokes keep their contrast. Returned with the pixel noise of what is returned."""
    from scipy import ndimage as ndi

    noise = pixel_noise(gray)
    if noise <= INK.noisy:
        return gray, noise
    gray = ndi.gaussian_filter(gray, INK.smoothing)
    return gray, pixel_noise(gray)


def pixel_noise(gray: np.ndarray) -> float:
    """The page's pixel noise (standard deviation), from neighbouring pixels' differences (every
    other row is plenty): robust, since strokes' edges are few among them."""
    steps = np.abs(np.diff(gray[::2], axis=1))
    return float(INK.noise_per_mad * np.median(steps) / np.sqrt(2)) if steps.size else 0.0


def ink_map(gray: np.ndarray, look: Look = FIRST_LOOK) -> tuple[np.ndarray, np.ndarray]:
    """Ink bright on black in [0, 1], as contrast against the paper around it, and where the
    background is not paper at all.

    The paper is a grey closing (an opening, for light ink) with a window wider than any stroke,
    so a bold stroke is never mistaken for paper; slow shading and anything dark that is wider
    than the window (a table, a scanner's black band) count as background and drop out. It is
    taken of the page with the slope of the light across it removed, which a closing near the
    border would overshoot. Background far darker than the page's paper is returned as the
    second array: ink touching it is the ragged edge of a page or a band.
    """
    window = max(INK.window_px, round(look.window * max(gray.shape)))
    light = light_ink(gray, window)
    slope = light_slope(gray, light, look.curved_light)
    if light:  # light ink on a dark board: the board's darkness is the paper's brightness
        board = _opening(gray - slope, window) + slope
        ink, paper = gray - board, 1 - board
    else:
        paper = _closing(gray - slope, window) + slope
        ink = paper - gray
    return np.clip(ink, 0, 1), paper < INK.off_paper * np.median(paper[PAPER_SAMPLE])


def light_ink(gray: np.ndarray, window: int) -> bool:
    """Whether the ink is light (chalk, a drawing on a black screen): most of the page, its border
    too, is nearer the darkest than the brightest pixel, and no wide bright paper is in view."""
    middle = (float(gray.min()) + float(gray.max())) / 2
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(gray[PAPER_SAMPLE]) >= middle or np.median(border) >= middle:
        return False
    # Opening the pixels above the middle is the same as opening the page and then thresholding
    # (a flat window commutes with a threshold), at a quarter of the memory.
    return bool(np.mean(_opening(gray >= middle, window)) < INK.light_paper)


def light_slope(gray: np.ndarray, light: bool, curved: bool = False) -> np.ndarray:
    """The light across the paper: a plane fit to the paper's brightness (least squares on every
    4th pixel of the brighter half, or the darker half for light ink, then again on those near the
    first fit), then a quadratic surface fit to the pixels near that plane, which follows a lamp's
    fall-off and a lens's dark corners; neither is pulled by ink, a table or a band."""
    rows, cols, design = _light_terms(gray.shape)
    sample = gray[PAPER_SAMPLE].ravel()
    middle = np.median(sample)
    paper = sample <= middle if light else sample >= middle  # the paper's side of the page to begin with
    for terms in (PLANE, PLANE, QUADRATIC) if curved else (PLANE, PLANE):
        coef = least_squares(design[paper, :terms], sample[paper])
        off = sample - design[:, :terms] @ coef
        near = off <= INK.paper_near if light else off >= -INK.paper_near
        if near.sum() < QUADRATIC:  # fewer points than terms fit no surface
            break
        paper = near
    surface = coef[0] + coef[1] * rows + coef[2] * cols
    if len(coef) == QUADRATIC:  # a plane's quadratic terms are nought: adding them changes nothing
        surface = surface + coef[3] * rows**2 + coef[4] * cols**2 + coef[5] * rows * cols
    return surface.astype(np.float32)


PLANE, QUADRATIC = 3, 6  # the terms of the light's surfaces: 1, r, c; and r², c², rc as well


@functools.lru_cache(maxsize=8)  # a folder's pages share a few shapes
def _light_terms(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """light_slope's coordinates for a page of this shape (a folder's pages mostly share one):
    rows and columns as fractions of the longer side, and the terms of the quadratic surface at
    every 4th pixel (1, r, c, r², c², rc)."""
    side = max(shape)
    rows, cols = (axis.astype(np.float32) / side for axis in np.ogrid[0 : shape[0], 0 : shape[1]])
    r, c = (a.ravel() for a in np.broadcast_arrays(rows[PAPER_SAMPLE], cols[PAPER_SAMPLE]))  # light_slope's sample
    design = np.column_stack([np.ones(r.size), r, c, r * r, c * c, r * c])
    for array in (rows, cols, design):
        array.flags.writeable = False
    return rows, cols, design


def least_squares(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The coefficients that fit `design @ coef` to `values` best, by the normal equations: two
    small matrix products (a few columns), at a fifth of einsum's time."""
    return np.linalg.lstsq(design.T @ design, design.T @ values.astype(np.float64), rcond=None)[0]


def ink_mask(ink: np.ndarray, noise: float) -> np.ndarray:
    """Where the strokes are.

    Hysteresis finds each piece of ink: connected pixels above a low level that hold a pixel
    above a high one, both set from the page's noise, so faint pencil is found and noise is not.
    A piece much fainter than the page's strongest is a smudge or a ruled line and is dropped;
    every other piece keeps its pixels above a fraction of its own strongest ink, so faint and
    bold strokes both come out at their real width. `noise` is the page's pixel_noise.
    """
    from scipy import ndimage as ndi

    eight_connected = ndi.generate_binary_structure(2, 2)
    labels, count = ndi.label(ink > max(INK.min_contrast, INK.noise_low * noise), structure=eight_connected)
    seeded = np.zeros(count + 1, bool)
    seeded[labels[ink > max(INK.seed_contrast * INK.min_contrast, INK.noise_high * noise)]] = True
    seeded[0] = False
    if not seeded.any():
        return np.zeros_like(ink, bool)
    inked = labels > 0
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    # The means of the inked pixels see no further than one pixel round them.
    box = np.s_[max(rows[0] - 1, 0) : rows[-1] + 2, max(cols[0] - 1, 0) : cols[-1] + 2]
    peaks = np.zeros(count + 1, np.float32)
    np.maximum.at(peaks, labels[box][inked[box]], ndi.uniform_filter(ink[box], INK.peak_px)[inked[box]])
    kept = seeded & (peaks >= INK.faint * peaks[seeded].max())
    mask = np.zeros_like(ink, bool)  # no ink outside the box round the inked pixels
    mask[box] = ink[box] >= np.where(kept, INK.ink_core * peaks, np.inf)[labels[box]]
    return mask


####################################################################################################
# Rules and lines across the page ##################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class RuleLimits:
    """Straight lines that are not writing (remove_page_rules, remove_lines): a ruled line, a page's
    or a table's edge, an underline, a column rule."""

    page_rule: float = 0.8  #: share of the page: a straight line this long is a rule, an edge or a border
    rule_gap: float = 0.05  #: share of the page: a rule may break for this long (a dashed or faint rule)
    rule_thin: float = 0.03  #: share of the page: a rule is no thicker than this ...
    rule_thin_px: int = 3  #: ... nor than this many pixels on a small page: a stroke across it is thicker
    line: float = 2.5  #: digit heights: straight lines longer than this are underlines or borders, never a digit
    slant_px: int = 5  #: pixels: a line may drift this far across its length (a page photographed a little turned)
    crossing: float = 0.02  #: share of a line's length: ink this close on both sides of it is a stroke crossing it
    crossing_px: int = 3  #: ... and never less than this many pixels


RULES = RuleLimits()


def remove_page_rules(mask: np.ndarray) -> np.ndarray:
    """Take out thin straight lines that run across most of the page: ruled lines, column rules,
    page edges, even where broken."""
    rows, cols = mask.shape
    side = max(rows, cols)
    return remove_lines(mask, round(RULES.page_rule * cols), round(RULES.page_rule * rows), gap=round(RULES.rule_gap * side),
                        thin=max(RULES.rule_thin_px, round(RULES.rule_thin * side)))


def remove_lines(mask: np.ndarray, across: int, down: int, gap: int = 0, thin: int | None = None) -> np.ndarray:
    """Take out straight lines: near-horizontal runs of ink at least `across` long and
    near-vertical ones at least `down` long, bridging gaps of `gap` pixels along them (a dashed
    or broken rule), and only where they are at most `thin` pixels thick (when given), with the
    ragged ink along their sides. Strokes that cross a line keep the pixels they share with it."""
    lines = np.zeros_like(mask)
    for axis, length in ((1, across), (0, down)):
        inked = np.flatnonzero(mask.any(axis=1 - axis))  # where along `axis` there is ink at all
        if length >= mask.shape[axis] or not inked.size or inked[-1] - inked[0] + 1 < length / 2:
            continue  # no run this long fits in the page, or in the stretch the ink spans
        slack = _running(mask, RULES.slant_px, 1 - axis, np.maximum)  # a slightly slanted line: long runs too
        if slack.sum(axis=axis).max() < length / 2:  # no run this long, even with gaps: nothing to do
            continue
        if gap:
            slack = _running(_running(slack, gap, axis, np.maximum), gap, axis, np.minimum)
        runs = opened(slack, length, axis)
        if thin is not None:  # thicker than a rule across it: a stroke, not a rule
            runs &= ~opened(mask, thin + 1, axis=1 - axis)
        lines |= _running(runs & mask, RULES.slant_px, 1 - axis, np.maximum) & mask
    if not lines.any():
        return mask
    kept = mask & ~lines
    reach = max(RULES.crossing_px, round(RULES.crossing * max(across, down)))
    crossing = _closed_along(kept, reach, 0) | _closed_along(kept, reach, 1)
    return kept | (crossing & lines)


####################################################################################################
# Pieces of ink ####################################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class BlobLimits:
    """Which connected pieces of ink could be digits (ink_blobs, away_from_edges, digit_height,
    is_clutter). Sizes are in digit heights (the page's digit_height) unless said otherwise."""

    noise_px: int = 4  #: pixels: connected ink smaller than this is grain, never a digit
    shape_px: int = 10  #: pixels: a piece this large has a shape to measure (straight or not)
    straight: float = 0.15  #: a piece whose second moments are this much thinner than long is a straight stroke
    border_run: float = 0.5  #: ink along this share of a page side ...
    border_depth: float = 0.5  #: ... and no deeper into the page than this share is a page edge, a band or a shadow
    edge_reach: float = 0.01  #: share of the page: ink this near a page edge or a band is its ragged bits ...
    edge_strip: float = 0.03  #: ... and a straight stroke this near runs beside it: the edge's shading, not a 1
    edge_reach_px: int = 2  #: ... and never nearer than this many pixels
    digit_pool: float = 0.25  #: share of the largest piece's area: pieces this large say how tall the digits are
    speck: float = 0.3  #: pieces smaller than this are specks: dots and dust
    border_piece: float = 0.6  #: a piece cut by the page's border and smaller than this is what is left of a mark
    straight_wide: float = 1.2  #: a straight stroke wider than this ...
    straight_tall: float = 1.6  #: ... or taller than this is a rule: a 1 is never that long
    frame_tall: float = 1.2  #: a piece taller than this round another ...
    framed: float = 0.4  #: ... at least this tall is a frame drawn round the number
    min_height: float = 0.45  #: a digit is at least this tall: anything shorter is a dash or a dot


BLOBS = BlobLimits()


def ink_blobs(mask: np.ndarray) -> tuple[np.ndarray, list[Blob]]:
    """Label the connected pieces of ink (8-connected) and describe each as a Blob; pieces of a
    few pixels are left out (noise, never a digit)."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(mask, structure=ndi.generate_binary_structure(2, 2))
    blobs = []
    for label, box in enumerate(ndi.find_objects(labels), start=1):
        pixels = labels[box] == label  # a piece's pixels lie in its box
        area = int(pixels.sum())
        if area < BLOBS.noise_px:
            continue
        straight = False
        if area >= BLOBS.shape_px:
            minor, major = squared_axes(pixels)
            straight = bool(minor < BLOBS.straight**2 * major)
        blobs.append(Blob(frozenset([label]), box[0].start, box[0].stop, box[1].start, box[1].stop, area, straight))
    return labels, blobs


def labelled(labels: np.ndarray, ids) -> np.ndarray:
    """Where a label image holds one of these labels: a blob's pixels."""
    return np.isin(labels, list(ids))


def away_from_edges(blobs: list[Blob], labels: np.ndarray, off_paper: np.ndarray) -> list[Blob]:
    """The blobs that neither run along the page's border nor come near it or the background
    beyond the paper, nor are straight strokes beside them: what is left once a page edge, a band
    or a table goes, with its ragged bits and the shading along its edge."""
    edges = off_paper | labelled(labels, [label for b in blobs if hugs_border(b, labels) for label in b.labels])
    if not edges.any():
        return blobs
    near, beside = (_labels_near(edges, labels, share) for share in (BLOBS.edge_reach, BLOBS.edge_strip))
    return [b for b in blobs if not b.labels & near and not (b.straight and b.labels & beside)]


def _labels_near(where: np.ndarray, labels: np.ndarray, share: float) -> set[int]:
    """The labels of the ink within `share` of the page's longer side of `where`."""
    reach = 2 * max(BLOBS.edge_reach_px, round(share * max(labels.shape))) + 1
    return set(np.unique(labels[_square_running(where, reach, np.maximum)]).tolist())


def touches_border(blob: Blob, shape: tuple[int, int]) -> bool:
    return blob.top == 0 or blob.left == 0 or blob.bottom == shape[0] or blob.right == shape[1]


def hugs_border(blob: Blob, labels: np.ndarray) -> bool:
    """Whether the blob runs along one side of the page and stays near it: a page edge, a
    scanner's black band, a shadow or a strip of table, but not a digit cropped tight."""
    if not touches_border(blob, labels.shape):
        return False
    height, width = labels.shape
    across, down = blob.width / width, blob.height / height
    sides = ((blob.top == 0, labels[0], across, down), (blob.bottom == height, labels[-1], across, down),
             (blob.left == 0, labels[:, 0], down, across), (blob.right == width, labels[:, -1], down, across))
    # A side the blob does not reach, or spans less than BLOBS.border_run of, it cannot run along.
    return any(reaches and run >= BLOBS.border_run and depth < BLOBS.border_depth
               and labelled(side, blob.labels).mean() >= BLOBS.border_run for reaches, side, run, depth in sides)


def digit_height(blobs: list[Blob], labels: np.ndarray) -> float:
    """The height of this page's digits: the median height of the blobs that could be digits (not
    flat straight strokes such as underlines, not along the border) and are not much smaller than
    the largest of them."""
    pool = [b for b in blobs if not (b.straight and b.width > b.height) and not hugs_border(b, labels)] or blobs
    largest = max(b.area for b in pool)
    return float(np.median([b.height for b in pool if b.area >= BLOBS.digit_pool * largest]))


def is_clutter(blob: Blob, labels: np.ndarray, height: float, others: list[Blob]) -> bool:
    """Ink that is not part of a digit: a page edge, band or shadow along the border, a small piece
    cut by the border, a straight line much longer than the digits, or a frame drawn around them."""
    cut_by_border = touches_border(blob, labels.shape) and max(blob.height, blob.width) < BLOBS.border_piece * height
    if hugs_border(blob, labels) or cut_by_border:
        return True
    if blob.straight and (blob.width > BLOBS.straight_wide * height or blob.height > BLOBS.straight_tall * height):
        return True
    return blob.height > BLOBS.frame_tall * height and any(
        encloses(blob, other) and other.height >= BLOBS.framed * height for other in others)


def encloses(outer: Blob, inner: Blob) -> bool:
    return (outer is not inner and outer.top < inner.top and inner.bottom < outer.bottom
            and outer.left < inner.left and inner.right < outer.right)


####################################################################################################
# Pieces of one digit ##############################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class PieceLimits:
    """When two pieces of ink are one digit (belong_together): a 5 whose bar floats, a stroke
    broken in two, a 4 written in two strokes. Sizes in digit heights unless said otherwise."""

    underline_drop: float = 0.1  #: a short flat piece starting this far below a digit's foot is an underline
    stacked_overlap: float = 0.5  #: share of the narrower piece's width: pieces sharing this much are in one column
    small_stacked_overlap: float = 0.3  #: ... or this much, where the smaller is under small_stacked ...
    small_stacked: float = 0.6  #: ... of the larger piece's height
    stacked_gap: float = 0.25  #: share of the smaller piece's height: stacked pieces this close are a broken stroke
    one_digit_tall: float = 1.4  #: two pieces together taller than this are two digits, one above the other
    piece_gap: float = 0.3  #: ... and pieces further apart than this, up or down, are too
    side_piece: float = 0.8  #: a piece shorter than this ...
    side_gap: float = 0.12  #: ... within this beside another is part of it (a 1's flag, a 7's bar)
    upper_top: float = 0.2  #: a piece starting no lower than this below the other's top ...
    upper_foot: float = 0.15  #: ... ending this share of the pair's height above its foot ...
    upper_overlap: float = 0.25  #: ... and overlapping this share of the narrower ...
    upper_reach: float = 0.08  #: ... or coming this near it, is a 4's or 5's upper stroke


PIECES = PieceLimits()


def merge_parts(blobs: list[Blob], height: float, labels: np.ndarray) -> list[Blob]:
    """Join the pieces of each digit until no two pieces belong together."""
    blobs = sorted(blobs, key=lambda b: b.left)
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(blobs)), 2):
            if belong_together(blobs[i], blobs[j], height, labels):
                blobs[i] = blobs[i].join(blobs.pop(j))
                merged = True
                break
    return blobs


def belong_together(a: Blob, b: Blob, height: float, labels: np.ndarray) -> bool:
    """Whether two blobs are pieces of one digit: stacked in one column (a 5 whose bar floats, a
    stroke broken in two), a small piece right beside a bigger one, or an upper piece overlapping
    or all but touching a longer one (a 4 written in two strokes). A flat piece below a digit is
    an underline, not part of it."""
    small, big = sorted((a, b), key=lambda blob: blob.height)
    if small.height < BLOBS.min_height * height and small.top >= big.bottom - PIECES.underline_drop * height:
        return False
    joined = a.join(b)
    overlap = (min(a.right, b.right) - max(a.left, b.left)) / min(a.width, b.width)
    gap = max(a.top, b.top) - min(a.bottom, b.bottom)
    small_beside_big = small.height <= PIECES.small_stacked * big.height
    stacked = PIECES.small_stacked_overlap if small_beside_big else PIECES.stacked_overlap
    if overlap >= stacked and gap <= PIECES.stacked_gap * small.height:
        return True
    if joined.height > PIECES.one_digit_tall * height or gap > PIECES.piece_gap * height:
        return False
    if overlap >= PIECES.stacked_overlap:
        return True
    if small.height < PIECES.side_piece * height and -overlap * min(a.width, b.width) < PIECES.side_gap * height:
        return True
    upper = (small.top <= big.top + PIECES.upper_top * height
             and small.bottom <= big.bottom - PIECES.upper_foot * joined.height)
    return upper and (overlap >= PIECES.upper_overlap or comes_within(a, b, labels, round(PIECES.upper_reach * height)))


def comes_within(a: Blob, b: Blob, labels: np.ndarray, reach: int) -> bool:
    """Whether two blobs come within `reach` pixels of each other."""
    from scipy import ndimage as ndi

    joined = a.join(b)
    region = labels[joined.top : joined.bottom, joined.left : joined.right]
    near = ndi.binary_dilation(labelled(region, a.labels), iterations=max(reach, 1))
    return bool((near & labelled(region, b.labels)).any())


####################################################################################################
# Lines of writing #################################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class WritingLimits:
    """Lines of writing and words (group_lines, without_frame_sides, words_left_out), in digit
    heights unless said otherwise."""

    same_line: float = 0.5  #: share of the smaller's height: pieces sharing this much of it are on one line
    smaller_writing: float = 0.55  #: share of the tallest line: smaller lines are other writing (a form's print)
    frame_reach: float = 0.1  #: a box's side reaches this far above and below the number ...
    frame_upright: float = 0.2  #: ... and stands upright, no wider than this share of its height (a slanted 1 leans)
    word_gap: float = 0.5  #: a space wider than this between two marks ends a word: a word space is wider
    word_marks: int = 2  #: a run of marks of which at least this many, and half, read as no digit is a word


WRITING = WritingLimits()


def group_lines(blobs: list[Blob]) -> list[list[Blob]]:
    """Blobs grouped into lines of writing, top to bottom, each read left to right; lines of much
    smaller writing than the largest (printed text beside a handwritten number) are dropped."""
    lines: list[list[Blob]] = []
    for blob in sorted(blobs, key=lambda b: b.top + b.bottom):
        for line in lines:
            top, bottom = min(b.top for b in line), max(b.bottom for b in line)
            if min(bottom, blob.bottom) - max(top, blob.top) >= WRITING.same_line * min(blob.height, bottom - top):
                line.append(blob)
                break
        else:
            lines.append([blob])
    lines = [without_frame_sides(line) for line in lines]
    sizes = [line_height(line) for line in lines]
    return [sorted(line, key=lambda b: b.left) for line, size in zip(lines, sizes)
            if size >= WRITING.smaller_writing * max(sizes)]


def without_frame_sides(line: list[Blob]) -> list[Blob]:
    """The line without upright straight strokes that reach well above and below all its other
    blobs: the sides of a box drawn around the number, or column rules, not 1s (a 1 written
    slanted leans; a box's side and a rule run along the page)."""
    rest = [b for b in line if not b.straight]
    if not rest:
        return line
    top, bottom, height = min(b.top for b in rest), max(b.bottom for b in rest), line_height(rest)
    reach = WRITING.frame_reach * height
    return [b for b in line if not (b.straight and b.width <= WRITING.frame_upright * b.height
                                    and b.top < top - reach and b.bottom > bottom + reach)]


def line_height(line: list[Blob]) -> float:
    return float(np.median([b.height for b in line]))


def words_left_out(lines: list[list[Digit]], digit: np.ndarray) -> np.ndarray:
    """`digit` (per blob, in reading order: the network reads a digit there) with the blobs of
    every word left out: a run of a line's blobs, each within WRITING.word_gap line heights of the next,
    where at least WRITING.word_marks blobs, and half of them or more, read as no digit."""
    kept, start = digit.copy(), 0
    for line in lines:
        height = float(np.median([d.box[1] - d.box[0] for d in line])) if line else 0.0
        breaks = [n for n in range(1, len(line)) if line[n].box[2] - line[n - 1].box[3] > WRITING.word_gap * height]
        for first, end in itertools.pairwise([0, *breaks, len(line)]):
            run = slice(start + first, start + end)
            marks = int((~digit[run]).sum())
            if marks >= WRITING.word_marks and 2 * marks >= end - first:
                kept[run] = False
        start += len(line)
    return kept


####################################################################################################
# One digit or two #################################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class TwoDigitLimits:
    """Whether a piece of ink is two digits touching, or two pieces are one digit: every answer
    to "is this two digits?" (split_touching, cut_in_two, slanted_cut, read_line). Sizes in digit
    heights unless said otherwise; one digit is seldom wider than it is tall."""

    touching: float = 1.2  #: a piece wider than this is several digits touching ...
    touching_widths: float = 1.7  #: ... or wider than this many of its line's usual digit widths
    few_digits: int = 3  #: a line of this many pieces or more has a usual digit width
    cut_span: tuple[float, float] = (0.3, 0.7)  #: shares of its width: where a touching pair may be cut ...
    cut_ink: float = 0.35  #: ... at a column crossing one stroke no taller than this (where two digits touch)
    piece_tall: float = 0.6  #: each piece left is ink this tall in its columns ...
    piece_wide: float = 0.3  #: ... and this wide: digit-sized (digit_sized)
    maybe_two: float = 1.1  #: width over height: a piece this wide may be two digits; the network is shown it cut too
    #: across per down: a cut upright or leaning as writing leans (to 27 degrees)
    cut_slants: tuple[float, ...] = (0.0, -0.25, 0.25, -0.5, 0.5)
    side_by_side: float = 0.75  #: share of the piece's height: each half of a slanted cut stands this tall
    #: two neighbouring pieces no wider together than this (in their height or their line's digit
    #: height) may be one digit, for the network to judge: a 4 written in two strokes stands wider than tall
    one_digit_width: float = 2.0


TWO = TwoDigitLimits()


def split_touching(blob: Blob, mask: np.ndarray, height: float, digit_width: float | None = None) -> list[Blob]:
    """Cut a blob much wider than one digit where two digits touch (cut_in_two), again and again,
    so that touching digits ("74") are read one by one: a blob wider than TWO.touching digit heights,
    or than TWO.touching_widths times the line's usual digit width (`digit_width`, known where the
    line has a few digits)."""
    by_width = digit_width is not None and blob.width > TWO.touching_widths * digit_width
    if blob.width <= TWO.touching * height and not by_width:
        return [blob]
    pieces = cut_in_two(blob, mask, height)
    if pieces is None:
        return [blob]
    return [part for piece in pieces for part in split_touching(piece, mask, height, digit_width)]


def cut_in_two(blob: Blob, mask: np.ndarray, height: float) -> list[Blob] | None:
    """Where a blob would be cut if it is two digits touching: the column within TWO.cut_span of its
    width with the least ink among those that cross one short stroke (where two digits touch) and
    leave a digit-sized piece on each side; None where there is none (a wide 0, a 2 with a long
    tail)."""
    for _, cut in _touching_columns(mask[blob.top : blob.bottom, blob.left : blob.right], height):
        pieces = [dataclasses.replace(blob, right=blob.left + cut), dataclasses.replace(blob, left=blob.left + cut)]
        if all(digit_sized(piece, mask, height) for piece in pieces):
            return pieces
    return None


def _touching_columns(region: np.ndarray, height: float) -> list[tuple[int, int]]:
    """The columns of a blob's mask within TWO.cut_span of its width that cross one short stroke (no
    taller than TWO.cut_ink digit heights), where two digits could touch: (ink, column) pairs, least
    ink first (the leftmost first among equals)."""
    ink = region.sum(axis=0)
    runs = (np.diff(region.astype(np.int8), axis=0) == 1).sum(axis=0) + region[0]
    span = range(round(TWO.cut_span[0] * region.shape[1]), round(TWO.cut_span[1] * region.shape[1]))
    return sorted((int(ink[cut]), cut) for cut in span if runs[cut] <= 1 and ink[cut] <= TWO.cut_ink * height)


def digit_sized(piece: Blob, mask: np.ndarray, height: float) -> bool:
    """Whether the ink in a piece's columns is as tall as a digit and wide enough to be one."""
    rows = np.flatnonzero(mask[:, piece.left : piece.right].any(axis=1))
    tall = len(rows) > 0 and rows[-1] - rows[0] + 1 >= TWO.piece_tall * height
    return tall and piece.width >= TWO.piece_wide * height


def slanted_cut(blob: Blob, mask: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Where a blob would be cut if it is two digits touching, as cut_in_two looks for it, but
    along lines that lean as handwriting leans (TWO.cut_slants) as well as upright (slanted digits
    overlap in every column: only a slanted cut passes between them), and leaving two pieces each
    TWO.side_by_side of the blob's height (two digits on a line stand about as tall; a 1's flag or a
    hook is no digit). Returns the two pieces' masks over the blob's box (the cut crossing the
    least ink), or None."""
    region = mask[blob.top : blob.bottom, blob.left : blob.right]
    rows, cols = np.nonzero(region)
    tall = max(TWO.piece_tall * height, TWO.side_by_side * blob.height)
    best = None
    for slant in TWO.cut_slants:
        along = cols - np.round(slant * (rows - (blob.height - 1) / 2)).astype(int)  # column once upright
        along -= along.min()
        sheared = np.zeros((blob.height, along.max() + 1), bool)
        sheared[rows, along] = True
        for ink, cut in _touching_columns(sheared, height):
            if best and ink >= best[0]:
                break
            left = along < cut
            if all(_spans(rows[side], cols[side], tall, TWO.piece_wide * height) for side in (left, ~left)):
                best = (ink, left)
                break
    if best is None:
        return None
    left = np.zeros_like(region)
    left[rows[best[1]], cols[best[1]]] = True
    return left, region & ~left


def _spans(rows: np.ndarray, cols: np.ndarray, tall: float, wide: float) -> bool:
    """Whether pixels at these rows and columns reach at least `tall` pixels high and `wide` across."""
    return len(rows) > 0 and np.ptp(rows) + 1 >= tall and np.ptp(cols) + 1 >= wide


####################################################################################################
# The network's choice #############################################################################
####################################################################################################


@dataclasses.dataclass(frozen=True)
class ChoiceLimits:
    """How the network's own probabilities choose between readings of a page (surest_readings,
    chosen_lines, second_looks)."""

    sure_join: float = 0.9  #: one reading replaces two only when the network is as sure of it as of a clear digit
    small_picture: int = 64  #: pixels a side: an image no larger is one digit's picture, also read whole
    narrow_window: float = 0.1  #: share of the page: a second look's paper window (then half of it), narrower than a
    # vignette, a patch of light or the bend of a shadow's edge, which then drop out as paper (a step is no stroke) ...
    stroke_span: float = 0.5  #: ... but never narrower than this share of the height of the digits read surely ...
    least_probability: float = 1e-9  #: a probability is at least this in a geometric mean (log 0 is minus infinity)
    stroke_window: float = 3  #: ... nor than this many widths of their strokes: wider than where two strokes meet


CHOICE = ChoiceLimits()


def surest_readings(model: Network, readings: list[Reading], read_again=None) -> list[Reading]:
    """Each reading as the network reads it surest (chosen_readings): a page read unsure (a digit
    under CHOICE.sure_join, a mark that is no digit, or nothing found) is read again with its second
    looks (second_looks), widest first, by `read_again(readings, looks)` (default: each file
    again, in this process), one look a round for the pages still unsure; a look's reading is kept
    when it is surer than the one kept so far."""
    chosen = chosen_readings(model, readings)
    looks = {n: second_looks(reading) for n, reading in enumerate(chosen) if unsure(reading)}
    for step in itertools.count():
        redo = [n for n, page_looks in looks.items() if step < len(page_looks) and unsure(chosen[n])]
        if not redo:
            return chosen
        again = (read_again or read_files_again)([chosen[n] for n in redo], [looks[n][step] for n in redo])
        for n, reading in zip(redo, chosen_readings(model, list(again))):
            if sureness(reading) > sureness(chosen[n]):
                chosen[n] = reading


def read_files_again(readings: list[Reading], looks: list[Look]) -> Iterator[Reading]:
    """Each reading's file read again with its look, in this process."""
    return map(read_digits, [Path(reading.file) for reading in readings], looks)


def second_looks(reading: Reading) -> list[Look]:
    """The second looks at an unsure page: the light may curve, and the paper window is
    CHOICE.narrow_window of the page's longer side, then half that (closer to the writing, for digits
    beside a shadow's edge), each widened to half the height of the digits the network was sure of
    in the first reading and to CHOICE.stroke_window times the width of the strokes it read as digits
    (not a shadow's "stroke"), so that no stroke is hollowed; one look where the two agree."""
    digits = reading.digits
    floor = 0.0
    if digits:
        page = max(reading.size)
        heights = [d.box[1] - d.box[0] for d, p in zip(digits, reading.proba) if p.max() >= CHOICE.sure_join]
        strokes = [d.stroke for d, p in zip(digits, reading.proba) if is_digit(p)]
        span = CHOICE.stroke_span * float(np.median(heights)) if heights else 0.0
        stroke = CHOICE.stroke_window * float(np.median(strokes)) if strokes else 0.0
        floor = max(span, stroke) / page
    windows = {min(INK.paper_window, max(window, floor)) for window in (CHOICE.narrow_window, CHOICE.narrow_window / 2)}
    return [Look(window, curved_light=True) for window in sorted(windows, reverse=True)]


def unsure(reading: Reading) -> bool:
    """Whether a chosen reading is worth a second look: nothing found, or a blob the network reads
    under CHOICE.sure_join (a doubtful digit, or a mark that is no digit)."""
    if reading.error is not None:
        return reading.blank
    return bool((reading.proba.max(axis=1) < CHOICE.sure_join).any())


def sureness(reading: Reading) -> float:
    """How sure the network is of a chosen reading: the geometric mean of its probability for each
    blob's likeliest digit, marks read as no digit included (a long number pays nothing for its
    length); 0 for a page where nothing was found."""
    if reading.proba is None or not len(reading.proba):
        return 0.0
    return float(np.exp(np.mean(np.log(np.maximum(reading.proba.max(axis=1), CHOICE.least_probability)))))


def chosen_readings(model: Network, readings: list[Reading]) -> list[Reading]:
    """Run the network once over every digit and every other reading in these readings; return
    each as the reading the network is surest of, with its probabilities."""
    candidates = [d for reading in readings for d in reading.digits]
    candidates += [d.with_next for d in candidates if d.with_next is not None]
    candidates += [part for d in candidates if d.apart is not None for part in d.apart]
    candidates += [reading.whole for reading in readings if reading.whole is not None]
    proba = read_proba(model, np.stack([d.image for d in candidates])) if candidates else np.zeros((0, NUM_CLASSES))
    proba_of = dict(zip(candidates, proba))
    return [reading if reading.error is not None else chosen_reading(reading, proba_of) for reading in readings]


def chosen_reading(reading: Reading, proba_of: dict[Digit, np.ndarray]) -> Reading:
    """One reading with the joins the network prefers (chosen_lines), or read whole where it is
    surer of that, and the probabilities of what is kept."""
    lines = chosen_lines(reading.lines, proba_of)
    kept = [d for line in lines for d in line]
    if reading.whole is not None and surest(reading.whole, proba_of) > np.prod([surest(d, proba_of) for d in kept]):
        lines, kept = [[reading.whole]], [reading.whole]
    return dataclasses.replace(reading, lines=lines, whole=None, proba=np.array([proba_of[d] for d in kept]))


def surest(digit: Digit, proba_of: dict[Digit, np.ndarray]) -> float:
    """The network's probability for its likeliest digit: how sure it is that this is that digit."""
    return float(proba_of[digit].max())


def chosen_lines(lines: list[list[Digit]], proba_of: dict[Digit, np.ndarray]) -> list[list[Digit]]:
    """Each line with two neighbouring pieces read as one digit wherever the network is surer of
    the joined reading than of both pieces' readings together, and sure of it (CHOICE.sure_join); and a
    blob the network is unsure of read as two touching digits (its `apart`) wherever it is surer
    of both pieces together than of the blob (reads_apart)."""
    chosen = []
    for line in lines:
        kept, i = [], 0
        while i < len(line):
            digit, joined = line[i], line[i].with_next
            if joined is not None and i + 1 < len(line) and surest(joined, proba_of) >= max(
                    CHOICE.sure_join, surest(digit, proba_of) * surest(line[i + 1], proba_of)):
                kept.append(joined)
                i += 2
            elif reads_apart(digit, proba_of):
                kept += digit.apart
                i += 1
            else:
                kept.append(digit)
                i += 1
        chosen.append(kept)
    return chosen


def reads_apart(digit: Digit, proba_of: dict[Digit, np.ndarray]) -> bool:
    """Whether the network reads a blob better as the two touching digits of its `apart`: it is
    unsure of the blob, and surer of both pieces together than of the blob."""
    if digit.apart is None or surest(digit, proba_of) >= CHOICE.sure_join:
        return False
    parts = [surest(part, proba_of) for part in digit.apart]
    return float(np.prod(parts)) > surest(digit, proba_of)


####################################################################################################
# Answers ##########################################################################################
####################################################################################################

DECIMALS = 4  # probabilities in the JSON answer: to a hundredth of a percent
SURE_ANSWER = 0.5  # an answer less probable than even odds is shown as a guess: "not sure: 4? 27%"


def json_answer(reading: Reading) -> dict:
    """The JSON-ready answer for one chosen reading: a digit; or a number, with a per-digit
    breakdown; or, for several lines of writing, the first line's number and every line's. Blobs
    that read as no digit are left out of the number and listed as "ignored"; a file holding
    nothing else is an error, as a blank page is."""
    if reading.error is not None:
        return {"file": reading.file, "error": reading.error}
    proba, file = reading.proba, reading.file
    digits = reading.kept
    ignored = [digit_answer(p) for p in proba[~digits]]
    if not digits.any():
        marks = f"{len(ignored)} mark{'s' * (len(ignored) != 1)}"
        error = f"{file}: no digit found ({marks}, none of them a digit)"
        return {"file": file, "error": error, "not_a_digit": ignored}
    per_digit = [digit_answer(p) for p in proba[digits]]
    if len(per_digit) == 1:
        result = {"file": file, **per_digit[0]}
    else:
        lines = line_numbers(reading.lines, proba, digits)
        result = {"file": file, "number": lines[0], "confidence": round(number_confidence(proba[digits]), DECIMALS),
                  "digits": per_digit}
        if len(lines) > 1:
            result["lines"] = lines
    return {**result, "ignored": ignored} if ignored else result


def digit_answer(proba: np.ndarray) -> dict:
    """One blob's answer: the digit, its probability, the three likeliest and all ten."""
    return {"digit": int(proba.argmax()), "confidence": round(float(proba.max()), DECIMALS), "top": top_k(proba),
            "probabilities": [round(float(v), DECIMALS) for v in proba]}


def top_k(proba: np.ndarray, k: int = 3) -> list[list]:
    order = np.argsort(-proba, kind="stable")[:k]
    return [[int(d), round(float(proba[d]), DECIMALS)] for d in order]


def number_confidence(proba: np.ndarray) -> float:
    """How likely a number is read right: the product of its digits' probabilities."""
    return float(np.prod(proba.max(axis=1)))


def line_numbers(lines: list[list[Digit]], proba: np.ndarray, kept: np.ndarray) -> list[str]:
    """The digits read on each line of a page, as text, leaving out blobs that are not `kept` as
    digits (and lines of nothing else): `proba` holds one row per blob, in order."""
    rows = iter(zip(proba, kept))
    texts = [digits_text(itertools.islice(rows, len(line))) for line in lines]
    return [text for text in texts if text]


def digits_text(rows) -> str:
    """The digits read, as text, from (probabilities, kept) pairs: blobs not kept are left out."""
    return "".join(str(int(p.argmax())) for p, kept in rows if kept)


def format_prediction(result: dict) -> str:
    """One line for a file's prediction."""
    if "number" in result:
        digits = ", ".join(f"{d['digit']} {d['confidence']:.1%}" for d in result["digits"])
        said = f"lines {' / '.join(result['lines'])}" if "lines" in result else f"number {result['number']}"
        return f"{result['file']}: {said} ({result['confidence']:.1%})  digits: {digits}"
    top = " | ".join(f"{d} {p:.1%}" for d, p in result["top"])
    return f"{result['file']}: {result['digit']} ({result['confidence']:.1%})  top 3: {top}"


####################################################################################################
# Files and folders ################################################################################
####################################################################################################

PREDICT_CHUNK = 256  # predict prints its results this many files at a time
MOST_WORKERS = 8  # worker processes at most: beyond that, starting them costs more than they read
WORKER_CHUNK = 8  # files handed to a worker at a time ...
CHUNKS_PER_WORKER = 4  # ... or fewer, so that each worker has at least this many chunks to do
PARALLEL_FROM = 48  # folders of this many files or more are read by worker processes


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The files to predict: each file as given, each folder's images sorted by name."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            files.append(path)
    return files


def predict_files(model: Network, files: Sequence[Path]) -> tuple[list[dict], list[Reading]]:
    """Read and predict every file; return JSON-ready answers and the chosen readings."""
    chunks = list(predict_chunks(model, files))
    return [r for results, _ in chunks for r in results], [r for _, readings in chunks for r in readings]


def predict_chunks(model: Network, files: Sequence[Path],
                   chunk: int = PREDICT_CHUNK) -> Iterator[tuple[list[dict], list[Reading]]]:
    """Read and predict files a chunk at a time, in order: (answers, readings) as each is ready."""
    with page_reader(len(files)) as read_each:
        readings = read_each(files)
        while batch := list(itertools.islice(readings, chunk)):
            again = lambda readings, looks: read_each([Path(r.file) for r in readings], looks)  # noqa: E731
            chosen = surest_readings(model, batch, again)
            yield [json_answer(reading) for reading in chosen], chosen


@contextlib.contextmanager
def page_reader(count: int) -> Iterator:
    """A lazy, ordered map of read_digits over files: in worker processes for a folder (NumPy's
    many small steps hold the GIL, so threads barely help), in this process for a few files."""
    workers = min(os.cpu_count() or 1, MOST_WORKERS)
    if count < PARALLEL_FROM or workers == 1:
        yield lambda files, looks=None: map(read_digits, files, looks or itertools.repeat(FIRST_LOOK))
        return
    # Imported once here, so that forked workers start with them rather than each importing them.
    from PIL import Image  # noqa: F401
    from scipy import ndimage  # noqa: F401

    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=worker_start(), initializer=worker_setup)

    def read_each(files: Sequence[Path], looks: Sequence[Look] | None = None) -> Iterator[Reading]:
        # Chunks of WORKER_CHUNK files, or fewer where there are few files to share out (second readings).
        chunk = max(1, min(WORKER_CHUNK, len(files) // (CHUNKS_PER_WORKER * workers)))
        return pool.map(read_digits, files, looks or itertools.repeat(FIRST_LOOK), chunksize=chunk)

    try:
        yield read_each
    except BaseException:  # Ctrl-C, SIGTERM, an error: the chunks in hand are finished, the queued files dropped
        pool.shutdown(cancel_futures=True)
        raise
    pool.shutdown()


def labelled_files(folder: Path) -> list[tuple[Path, str]]:
    """A labelled folder's images and their labels: subfolders 0 to 9 holding images of that digit
    (Keras's image_dataset_from_directory layout), or files named <label>_<anything>.<ext>, where
    the label is a digit or a whole number (ASCII digits). Files that are not images (Thumbs.db,
    notes.txt) are skipped with one warning; hidden files are passed over."""
    if not folder.is_dir():
        raise UserError(missing_or_special(folder) if not folder.exists() else f"{folder}: not a folder")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if any(p.is_dir() for p in entries):
        for entry in entries:
            if (entry.is_dir() and entry.name not in DIGITS) or is_image_file(entry):
                raise UserError(f"{entry}: a labelled folder with subfolders holds only subfolders named 0 to 9")
        found = [(p, sub.name) for sub in entries if sub.is_dir()
                 for p in sorted(sub.iterdir()) if not p.name.startswith(".")]
    else:
        found = [(p, p.name.split("_")[0]) for p in entries]
    files = [(path, label) for path, label in found if is_image_file(path)]
    stray = [path for path in entries + [path for path, _ in found] if not path.is_dir() and not is_image_file(path)]
    if stray:
        names = ", ".join(sorted({p.name for p in stray}))
        count = len(set(stray))
        warn(f"{folder}: skipped {plural(count, 'file')} that {'is not an image' if count == 1 else 'are not images'}: "
             f"{names}")
    for path, label in files:
        if not is_label(label) or (path.parent == folder and "_" not in path.name):
            raise UserError(f"{path}: not a labelled image (name it <digit>_<anything>{path.suffix} or put it "
                            "in a subfolder named for its digit)")
    if not files:
        raise UserError(f"{folder}: no labelled images (use subfolders 0 to 9, or files named <digit>_<anything>.png)")
    return files


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def is_label(text: str) -> bool:
    """A digit or a whole number in ASCII digits (str.isdigit also takes a superscript two)."""
    return text.isascii() and text.isdigit()


def load_examples(folders: Sequence[Path]) -> Examples:
    """Your labelled examples as MNIST-style 28x28 images and their digits, each image read exactly
    as `predict` reads it. A file whose label has as many digits as were found in it gives one
    example per digit; any other file (blank, or the wrong number of digits) is skipped with a
    warning that names it."""
    files = [(folder, path, label) for folder in folders for path, label in labelled_files(folder)]
    images, labels, counts, skipped = [], [], collections.Counter(), 0
    with page_reader(len(files)) as read_each:
        for (folder, path, label), reading in zip(files, read_each([path for _, path, _ in files])):
            if reading.unreadable:
                raise UserError(reading.error)
            digits = [digit.image for digit in reading.digits]
            if len(digits) != len(label):
                warn(f"{path}: skipped ({len(digits)} digits found, the label {label} has {len(label)})")
                skipped += 1
                continue
            images += digits
            labels += [int(d) for d in label]
            counts[str(folder)] += len(digits)
    if not images:
        raise UserError(f"{', '.join(map(str, folders))}: no usable labelled examples (every image was skipped)")
    return Examples(np.stack(images), np.array(labels, np.int64), dict(counts), skipped)


def score_folder(model: Network, folder: Path, out_dir: Path, figure: str) -> dict:
    """Read every image of a labelled folder as `predict` does; how many come back right, overall
    and per label, with the mistakes drawn into `figure` (see mistakes_figures)."""
    files = labelled_files(folder)
    results, readings = predict_files(model, [path for path, _ in files])
    unreadable = next((r.error for r in readings if r.unreadable), None)
    if unreadable:
        raise UserError(unreadable)
    got = [str(r.get("number", r.get("digit", ""))) for r in results]
    right = [read == label for read, (_, label) in zip(got, files)]
    per_label = collections.defaultdict(list)
    for ok, (_, label) in zip(right, files):
        per_label[label].append(ok)
    score = {"accuracy": float(np.mean(right)), "right": int(sum(right)), "images": len(files),
             "failed": sum("error" in r for r in results),
             "per_label": {label: {"accuracy": float(np.mean(oks)), "images": len(oks)}
                           for label, oks in sorted(per_label.items(), key=lambda item: (len(item[0]), item[0]))}}
    wrong = [reading for reading, ok in zip(readings, right) if not ok and reading.error is None]  # misread, not blank
    if wrong:
        score["mistakes_figure"] = figure
        truth = {str(path): label for path, label in files}
        save_image(predict_sheet(wrong, len(wrong), truth), out_dir / score["mistakes_figure"])
    return score


def example_counts(save_dir: Path) -> dict[str, int]:
    """Examples saved per digit in the layout draw and serve write: DIR/<digit>/*.png."""
    return {d: len(list((save_dir / d).glob("*.png"))) if (save_dir / d).is_dir() else 0 for d in DIGITS}


def digits_in_example(gray: np.ndarray) -> int:
    """How many digits `train --extra` will find in this picture once it is saved as an example
    (load_examples reads it as predict's first look does): an example is of use with one."""
    return len(read_page(gray, "example").digits)


def save_example_image(save_dir: Path, digit: str, pixels: np.ndarray) -> Path:
    """Save a grayscale image (uint8, dark ink on light paper) as an example of `digit`, atomically,
    as DIR/<digit>/<time>.png: the name is NumNet's, never a client's."""
    from PIL import Image

    path = save_dir / digit / f"{datetime.datetime.now():%Y%m%d-%H%M%S-%f}.png"
    save_image(Image.fromarray(pixels), path)
    return path


####################################################################################################
# predict.png ######################################################################################
####################################################################################################

PREDICT_OUTPUT = "predict.png"
PREDICT_SHOWN = 36  # predict.png shows the first this many images: a picture, not a report
SHEET_PAGE = (320, 170)  # the largest an original is drawn in predict.png, in pixels
SHEET_COLUMNS = 4  # predict.png lays its pages out this many across: a picture taken in at once
SHEET_INPUT = 52  # each 28x28 input is drawn this many pixels a side, 6 to a row, two rows at most
SHEET_INPUTS_PER_ROW = 6
SHEET_CAPTION = 14  # the font size of each input's caption: digits about 10 pixels tall


def predict_sheet(readings: list[Reading], total: int | None = None, truth: dict[str, str] | None = None):
    """predict.png, drawn with Pillow: pages in a grid of up to SHEET_COLUMNS, each with its name
    and what was read (and the true label, where `truth` gives it), the original with a red box and
    the answer on every digit read (grey and crossed out where a blob reads as no digit and was
    ignored; a small original scaled up by whole steps, pixels visible), and under it the 28x28
    images the network saw, with its answers. Where `total` images were read and fewer are
    shown, a line above says so."""
    from PIL import Image, ImageDraw, ImageFont

    shown = [r for r in readings if r.error is None][:PREDICT_SHOWN]
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=SHEET_CAPTION)
    columns = max(1, min(SHEET_COLUMNS, len(shown)))
    row_h = SHEET_INPUT + SHEET_CAPTION + 2
    cell_w, cell_h = SHEET_PAGE[0] + 20, 22 + SHEET_PAGE[1] + 8 + 2 * row_h + 8
    header = 24 if total is not None and total > len(shown) else 0
    sheet = Image.new("RGB", (columns * cell_w + 10, header + -(-len(shown) // columns) * cell_h + 10), "white")
    draw = ImageDraw.Draw(sheet)
    if header:
        draw.text((10, 4), f"the first {len(shown)} of {total} images read", fill="black", font=font)
    for n, reading in enumerate(shown):
        left, top = 10 + (n % columns) * cell_w, header + 5 + (n // columns) * cell_h
        text = " / ".join(line_numbers(reading.lines, reading.proba, reading.kept)) or "no digit"
        if truth is not None:
            text = f"true {truth[reading.file]}, read {text}"
        where = Path(reading.file)
        draw.text((left, top), f"{where.parent.name}/{where.name}: {text}"[-44:], fill="black", font=font)
        page, zoom = sheet_page(reading)
        sheet.paste(page, (left, top + 22))
        digits = reading.digits[: 2 * SHEET_INPUTS_PER_ROW]
        for k, (digit, proba, kept) in enumerate(zip(digits, reading.proba, reading.kept)):
            x = left + (k % SHEET_INPUTS_PER_ROW) * SHEET_INPUT
            y = top + 30 + SHEET_PAGE[1] + (k // SHEET_INPUTS_PER_ROW) * row_h
            sheet.paste(Image.fromarray(digit.image).resize((SHEET_INPUT - 4, SHEET_INPUT - 4), Image.Resampling.NEAREST), (x, y))
            label = f"{int(proba.argmax())} {proba.max():.0%}" if kept else "none"
            draw.text((x, y + SHEET_INPUT - 3), label, fill="black", font=small)
    return sheet


def sheet_page(reading: Reading):
    """The original of a reading for predict.png, a small one scaled up by a whole factor (pixels
    visible), with its boxes and answers drawn on; returns it and the factor."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.fromarray(reading.picture()).convert("RGB")
    zoom = max(1, min(SHEET_PAGE[0] // page.width, SHEET_PAGE[1] // page.height))
    page = page.resize((page.width * zoom, page.height * zoom), Image.Resampling.NEAREST)
    boxes, small = ImageDraw.Draw(page), ImageFont.load_default(size=12)
    for digit, proba, kept in zip(reading.digits, reading.proba, reading.kept):
        y0, y1, x0, x1 = (round(v * reading.scale * zoom) for v in digit.box)
        color = (220, 30, 30) if kept else (150, 150, 150)
        boxes.rectangle((x0 - 1, y0 - 1, x1, y1), outline=color, width=2 if kept else 1)
        if not kept:
            boxes.line((x0, y0, x1, y1), fill=color)
        boxes.text((x0, max(0, y0 - 14)), str(int(proba.argmax())) if kept else "ignored", fill=color, font=small)
    return page, zoom


def thumbnail(gray: np.ndarray, scale: float) -> np.ndarray:
    """A small uint8 copy of a grayscale page."""
    from PIL import Image

    page = Image.fromarray((gray * 255).astype(np.uint8))
    return np.asarray(page.resize((max(1, round(page.width * scale)), max(1, round(page.height * scale)))))


####################################################################################################
####################################################################################################
# PART 3: THE APPS AND THE COMMAND LINE ############################################################
####################################################################################################
####################################################################################################


####################################################################################################
# Predict ##########################################################################################
####################################################################################################


def cmd_predict(run: RunConfig, paths: Sequence[Path], as_json: bool) -> int:
    model = load_reader(run.model)
    files = image_files(paths)
    if not files:
        raise UserError(f"{', '.join(map(str, paths))}: no image files found")
    shown, failed, done, readable = [], False, 0, 0
    progress = Progress(len(files)) if sys.stderr.isatty() else None
    if as_json:
        print("[", end="")
    for results, readings in predict_chunks(model, files):
        for result in results:
            failed |= "error" in result
            print_result(result, as_json, first=done == 0, progress=progress)
            done += 1
        sys.stdout.flush()
        read = [r for r in readings if r.error is None]
        shown += read[: PREDICT_SHOWN - len(shown)]
        readable += len(read)
        if progress:
            progress.show(done)
    if progress:
        progress.close()
    if as_json:
        print("\n]")
    if shown:
        sheet = save_image(predict_sheet(shown, readable), run.out_dir / PREDICT_OUTPUT)
        # stdout holds nothing but the JSON array when --json asks for one
        print(f"saved {run.out_dir / PREDICT_OUTPUT}", file=sys.stderr if as_json else sys.stdout)
        if run.show and display_available():
            show_image(sheet, "NumNet predictions on your images")
    return 1 if failed else 0


def print_result(result: dict, as_json: bool, first: bool, progress: Progress | None) -> None:
    """One file's answer on stdout (a line, or one element of the JSON array); errors on stderr."""
    if "error" in result:
        if progress:
            progress.clear()
        print(f"num_net: error: {one_line(result['error'])}", file=sys.stderr)
    if as_json:
        print(("" if first else ",") + "\n" + json.dumps(result), end="")  # one object per line: greppable
    elif "error" not in result:
        print(format_prediction(result))


class Progress:
    """A line on a terminal's stderr, rewritten in place: how many files have been read."""

    def __init__(self, total: int):
        self.total, self.start = total, time.perf_counter()

    def show(self, done: int) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        print(f"\rread {done:,}/{self.total:,} files ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

    def clear(self) -> None:
        print("\r\033[K", end="", file=sys.stderr)

    def close(self) -> None:
        print(file=sys.stderr)


def show_image(image, title: str) -> None:
    """Open a picture in a plot window (when an interactive backend is available)."""
    plt = pyplot(True)
    fig = plt.figure(figsize=(image.width / 100, image.height / 100))
    fig.figimage(np.asarray(image))
    fig.canvas.manager.set_window_title(title) if fig.canvas.manager else None
    show_figures(plt)


####################################################################################################
# Draw #############################################################################################
####################################################################################################


def cmd_draw(run: RunConfig, save_dir: Path = DEFAULT_SAVE_DIR) -> int:
    check_writable_folder(save_dir, "examples")  # before the window opens: a digit key would fail there unseen
    if not display_available():  # checked before the model load: it takes no time
        raise UserError("draw needs a display (no DISPLAY or WAYLAND_DISPLAY is set); "
                        "use `predict` on an image file, or `serve` and a browser, instead")
    plt = pyplot(True)
    if plt.get_backend().lower() == "agg":
        raise UserError("draw needs an interactive Matplotlib backend (TkAgg or QtAgg); "
                        "install Tk or PySide6, or set MPLBACKEND")
    pad = DrawPad(plt, load_reader(run.model), save_dir=save_dir)
    show_until_closed(plt)
    plt.close(pad.fig)
    return 0


class DrawPad:
    """A Matplotlib window to draw digits in, with the network's live answer beside it.

    Mouse drag paints with a round brush; every change re-runs predict's preprocessing and the
    network. `c` or the Clear button clears, `q` quits. Each finished stroke prints one line. A
    digit key 0-9 saves the drawing as an example of that digit in `save_dir`/<digit>/ (for
    `train --extra`) and clears the canvas; the window counts the examples saved per digit.
    """

    SIZE = 280  # canvas pixels a side: 10x MNIST
    BRUSH = 11.0  # brush radius in canvas pixels

    def __init__(self, plt, model: Network, out=sys.stdout, save_dir: Path = DEFAULT_SAVE_DIR):
        from matplotlib.widgets import Button

        self.model, self.out, self.plt, self.save_dir = model, out, plt, save_dir
        self.saved = list(example_counts(save_dir).values())
        self.ink = np.zeros((self.SIZE, self.SIZE), np.float32)
        self.last: tuple[float, float] | None = None
        self.proba = np.zeros(NUM_CLASSES)
        self.kept = np.zeros(0, bool)  # per blob of the last reading: whether it counts as a digit
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
        self.answer_text = self.fig.text(0.93, 0.74, "", fontsize=40, ha="center", va="center", weight="bold")
        self.sure = self.fig.text(0.93, 0.64, "", fontsize=12, ha="center", va="center")
        self.bars_for = self.fig.text(0.76, 0.03, "", fontsize=10, ha="center", va="center")
        self.saved_text = self.fig.text(0.15, 0.03, "", fontsize=10, va="center")
        self._style_axes()
        self.clear_button = Button(self.fig.add_axes((0.02, 0.02, 0.1, 0.06)), "Clear")
        self.clear_button.on_clicked(lambda _event: self.clear())
        for name, handler in (("button_press_event", self.on_press), ("motion_notify_event", self.on_move),
                              ("button_release_event", self.on_release), ("key_press_event", self.on_key),
                              ("draw_event", self.on_draw)):
            self.fig.canvas.mpl_connect(name, handler)
        # Blitting: a full redraw of the figure takes ~60 ms; repainting only the parts that change
        # keeps each update well under the 50 ms a mouse move may take.
        self.live = [self.canvas_image, self.seen_image, *self.bars, self.answer_text, self.sure, self.bars_for,
                     self.saved_text]
        for artist in self.live:
            artist.set_animated(True)
        self.background = None
        self.refresh()

    def _style_axes(self) -> None:
        self.ax_canvas.set_title("draw a digit here (c: clear, q: quit, 0-9: save as)")
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
        """Read the canvas exactly as `predict` reads a page: its digits' 28x28 images."""
        reading, _ = read_array(self.model, self.ink, "drawing")
        self.proba = reading.proba if reading.proba is not None else np.zeros((0, NUM_CLASSES))
        self.kept = reading.kept if reading.proba is not None else np.zeros(0, bool)
        return [digit.image for digit in reading.digits]

    def refresh(self) -> None:
        digits = self.predict()
        self.canvas_image.set_data(self.ink)
        self.seen_image.set_data(np.concatenate(digits, axis=1) if digits else np.zeros((IMAGE_SIZE, IMAGE_SIZE)))
        self.seen_image.set_extent((-0.5, IMAGE_SIZE * max(len(digits), 1) - 0.5, IMAGE_SIZE - 0.5, -0.5))
        last = self.proba[-1] if len(self.proba) else np.zeros(NUM_CLASSES)
        for d, bar in enumerate(self.bars):
            bar.set_height(last[d])
            bar.set_color("tab:red" if len(self.proba) and d == last.argmax() else "tab:blue")
        self.bars_for.set_text(f"bars: digit {len(self.proba)} of {len(self.proba)} ({last.argmax()})"
                               if len(self.proba) > 1 else "")
        said = self.said()
        self.answer_text.set_text(said or "?")
        self.answer_text.set_fontsize(40 if len(said) <= 4 else 15)  # "not a digit" and "not sure" fit beside the bars
        self.answer_text.set_weight("bold" if len(said) <= 4 else "normal")
        self.sure.set_text(self.how_sure())
        counts = "  ".join(f"{d}:{n}" for d, n in enumerate(self.saved))
        self.saved_text.set_text(f"saved in {self.save_dir} (press 0-9 to save): {counts}")
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

    def said(self) -> str:
        """The digits drawn, as text; "not a digit" where nothing drawn reads as one, and
        "not sure: 4? 27%" where the network is less sure than even odds."""
        if len(self.proba) and not self.kept.any():
            return "not a digit"
        text = digits_text(zip(self.proba, self.kept))
        confidence = number_confidence(self.proba[self.kept]) if text else 1.0
        return f"not sure:\n{text}? {confidence:.0%}" if confidence < SURE_ANSWER else text

    def how_sure(self) -> str:
        """The line under the answer: how probable it is (a guess says so in the answer itself)."""
        if not len(self.proba):
            return ""
        if not self.kept.any():
            return f"at most {self.proba.max():.0%} for any digit"
        confidence = number_confidence(self.proba[self.kept])
        return f"{confidence:.0%} sure" if confidence >= SURE_ANSWER else ""

    def summary(self) -> str:
        """The one-line answer printed when a stroke ends."""
        kept = self.proba[self.kept] if len(self.proba) else self.proba
        if not len(kept):
            return "digit=none" if not len(self.proba) else f"digit=none (not a digit, {self.proba.max():.0%} at most)"
        key = "digit" if len(kept) == 1 else "number"
        return f"{key}={digits_text(zip(self.proba, self.kept))} confidence={number_confidence(kept):.3f}"

    def tell(self, message: str) -> None:
        """A line in the window, where the saved counts are, and on stdout."""
        print(message, file=self.out, flush=True)
        self.saved_text.set_text(message)
        self.blit()

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
        elif event.key in DIGITS:
            self.save_example(int(event.key))

    def save_example(self, digit: int) -> None:
        """Save the drawing (dark ink on white, as on paper) as an example of `digit`, then clear."""
        if not self.ink.any():
            print("nothing drawn to save", file=self.out, flush=True)
            return
        paper = np.round(255 * (1 - self.ink)).astype(np.uint8)  # as saved: dark ink on white
        found = digits_in_example(paper / np.float32(255))
        if found != 1:  # train --extra would skip it: a label names one digit
            self.tell(f"the canvas holds {found} digits; draw one to save it as a {digit}")
            return
        path = save_example_image(self.save_dir, str(digit), paper)
        self.saved[digit] += 1
        print(f"saved {path} ({plural(self.saved[digit], 'example')} of {digit})", file=self.out, flush=True)
        self.clear()


####################################################################################################
# Serve ############################################################################################
####################################################################################################

SERVE_BODY_LIMIT = 20 << 20  # uploads over 20 MB are refused (413) and read no further
SERVE_PIXELS = 40_000_000  # an upload decoding to more pixels than this (a 40-megapixel PNG) is not decoded
SERVE_DEADLINE = 20.0  # seconds a client has to send a whole request, headers and body: a slow or stuck one is dropped
SERVE_CONNECTIONS = 64  # connections open at once (a classroom's phones twice over); more are answered 503
SERVE_WORKERS = 2  # images decoded and read at once, by this many long-lived threads: one per core


def cmd_serve(run: RunConfig, host: str, port: int, save_dir: Path) -> int:
    check_writable_folder(save_dir, "examples")
    model = load_reader(run.model, numpy_only=True)
    try:
        server = make_server(model, host, port, save_dir)
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from exc
    port = server.server_address[1]
    if host in ("0.0.0.0", ""):
        where = lan_address() or "127.0.0.1"
        # The warning first: once the address is out, a client (or Ctrl-C) may come at once.
        warn("listening on every network interface: anyone on this network can read images and save examples")
        print(f"NumNet at http://{where}:{port}/ (also http://127.0.0.1:{port}/); Ctrl-C stops it", flush=True)
    else:
        print(f"NumNet at http://{host}:{port}/ ; Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def make_server(model: NumPyNetwork, host: str, port: int, save_dir: Path,
                timeout: float = SERVE_DEADLINE) -> NumNetServer:
    """A server for NumNet's page and API (not started); `timeout` is the whole request's deadline."""
    return NumNetServer((host, port), model, save_dir, timeout)


class NumNetServer(ThreadingHTTPServer):
    """The standard library's threading server, a thread per connection, with NumNet's limits:
    SERVE_CONNECTIONS open at once, a whole request within the deadline, SERVE_WORKERS images
    decoded and read at once, and only its own names answered. (A server library such as waitress drops
    only idle connections, and writes its own plain-text errors: these limits are NumNet's.)"""

    request_queue_size = SERVE_CONNECTIONS  # a classroom's connections arriving at once (the default is 5)
    daemon_threads = True  # Ctrl-C stops the server without waiting for a stuck client

    def __init__(self, address, model: NumPyNetwork, save_dir: Path, deadline: float = SERVE_DEADLINE):
        self.model, self.save_dir = model, save_dir  #: the NumPyNetwork read with; where examples go
        self.deadlines = Deadlines(deadline)
        self.connections = threading.BoundedSemaphore(SERVE_CONNECTIONS)
        # Images are decoded by a few long-lived threads, not each request's own: the C allocator
        # keeps a thread's freed memory for that thread, and a new thread per upload would keep
        # one large decode's worth each.
        self.workers = concurrent.futures.ThreadPoolExecutor(SERVE_WORKERS, thread_name_prefix="numnet-read")
        self.saving = threading.Lock()  #: one example saved at a time, so counts and names stay consistent
        self.names = own_names(address[0])
        super().__init__(address, NumNetHandler)  # binds, or closes itself (server_close) and raises

    def answers_to(self, host: str) -> bool:
        """Whether a Host header names this server: one of its names, or an IP address literal
        (no DNS rebinding is done with a literal, and the server answers on its addresses)."""
        try:
            name = urllib.parse.urlsplit(f"//{host.strip()}").hostname or ""  # lower case, no port or brackets
        except ValueError:  # an unclosed bracket
            return False
        if name.rstrip(".") in self.names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        bound = self.server_address[0]
        return bound in ("0.0.0.0", "::", "") or address.is_loopback or str(address) == bound

    def process_request(self, request, client_address) -> None:
        if not self.connections.acquire(blocking=False):  # full: a short answer, and the thread is not made
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                body = b'{"error": "NumNet is busy: too many connections at once; try again"}'
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.deadlines.done(request)
            self.connections.release()

    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer: one line, not the standard library's traceback."""
        exc = sys.exc_info()[1]
        warn(f"a connection from {client_address[0]} ended early: {type(exc).__name__}: {first_line(exc)}")

    def server_close(self) -> None:
        self.deadlines.stop()
        self.workers.shutdown(wait=False, cancel_futures=True)
        super().server_close()


def own_names(host: str) -> set[str]:
    """The names a browser may call this server by: localhost, the --host given, this machine's."""
    machine = socket.gethostname().lower()
    names = {"localhost", host.lower(), machine, f"{machine}.local"}  # .local: the name phones find by mDNS
    return {name.rstrip(".") for name in names if name}


class Deadlines:
    """When each open connection must have sent its whole request; a watcher thread shuts down
    the ones past it. A per-read timeout alone would keep a client sending a byte a second forever."""

    def __init__(self, seconds: float):
        self.seconds, self.due, self.lock = seconds, {}, threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._watch, name="numnet-deadlines", daemon=True).start()

    def start(self, connection: socket.socket) -> None:
        with self.lock:
            self.due[connection] = time.monotonic() + self.seconds

    def done(self, connection: socket.socket) -> None:
        with self.lock:
            self.due.pop(connection, None)

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self) -> None:
        while not self.stopped.wait(min(0.25, self.seconds / 4)):
            now = time.monotonic()
            with self.lock:
                late = [c for c, due in self.due.items() if due <= now]
                for connection in late:
                    del self.due[connection]
            for connection in late:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)  # its blocked read returns at once, empty


class NumNetHandler(BaseHTTPRequestHandler):
    """One request to `serve`. The page at /, readings at POST /api/predict, examples saved at
    POST /api/examples?digit=D (counts at GET /api/examples). Only the server's own names are
    answered and only its own page may post; every error is JSON with a 4xx or 5xx status. Reading
    is exactly predict's: read_page and surest_readings, NumPy only."""

    server: NumNetServer
    server_version = "NumNet"
    protocol_version = "HTTP/1.0"  #: one request a connection: each one's deadline is the connection's

    def setup(self) -> None:
        self.timeout = self.server.deadlines.seconds  # no single read waits longer than the whole request may
        super().setup()
        self.server.deadlines.start(self.connection)

    def do_GET(self) -> None:
        if self.refused():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            self.send(200, SERVE_PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/examples":
            self.send_json(200, {"counts": example_counts(self.server.save_dir)})
        else:
            self.send_json(404, {"error": f"no such page: {one_line(path)[:100]}"})

    def do_POST(self) -> None:
        if self.refused(posting=True):
            return
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path == "/api/predict":
                status, body = 200, self.predict(self.body())
            elif url.path == "/api/examples":
                status, body = 200, self.save_example(url.query, self.body())
            else:
                status, body = 404, {"error": f"no such endpoint: {one_line(url.path)[:100]}"}
        except RequestError as exc:
            status, body = exc.status, {"error": str(exc), **exc.extra}
        except (TimeoutError, ConnectionError):
            raise  # the client is gone or stuck: the server drops it
        except Exception as exc:  # a bug: the client still gets an answer, the terminal one line
            warn(f"a request to {url.path} failed: {type(exc).__name__}: {first_line(exc)}")
            status, body = 500, {"error": "NumNet failed on this request (a bug); the server goes on"}
        self.send_json(status, body)

    def refuse_method(self) -> None:
        self.send_json(405, {"error": f"{one_line(self.command or '')[:20]} is not served here: GET / and POST /api/..."})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = refuse_method

    def refused(self, posting: bool = False) -> bool:
        """Answer 421 to a request for another name (DNS rebinding: an attacker's name that points
        here) and 403 to a post from another site's page; say whether it was refused."""
        host = self.headers.get("Host")
        if host is not None and not self.server.answers_to(host):
            self.send_json(421, {"error": f"this server answers to its own names and addresses, not "
                                          f"{one_line(host)[:100]!r}"})
            return True
        origin, site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site", "same-origin")
        if posting and ((origin is not None and origin.lower() != f"http://{host or ''}".lower())
                        or site.lower() not in ("same-origin", "none")):
            self.send_json(403, {"error": "only NumNet's own page may send images and save examples here"})
            return True
        return False

    def body(self) -> bytes:
        """The request's body, read no further than SERVE_BODY_LIMIT."""
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.strip().isdigit() and len(length) <= 12):
            raise RequestError(411 if length is None else 400, "send the image as the body, with its Content-Length")
        size = int(length)
        if size > SERVE_BODY_LIMIT:
            raise RequestError(413, f"upload of {size:,} bytes refused: the limit is {SERVE_BODY_LIMIT // 2**20} MB")
        data = self.rfile.read(size)
        if len(data) < size:
            raise ConnectionError("the client sent less than its Content-Length")
        self.server.deadlines.done(self.connection)  # all of it is in: what is left is NumNet's work
        return data

    def gray(self, data: bytes) -> tuple[np.ndarray, float]:
        """The upload decoded, and how many of its pixels one working pixel is (large photos are shrunk)."""
        try:
            gray, side = decoded(io.BytesIO(data), "upload", max_pixels=SERVE_PIXELS)
        except UserError as exc:
            raise RequestError(415 if isinstance(exc, UnreadableImage) else 400, str(exc)) from exc
        return gray, side / max(gray.shape)

    def read(self, data: bytes) -> tuple[float, Reading, dict]:
        gray, zoom = self.gray(data)
        return zoom, *read_array(self.server.model, gray, "upload")

    def count_digits(self, data: bytes) -> tuple[np.ndarray, int]:
        gray, _ = self.gray(data)
        return gray, digits_in_example(gray)

    def predict(self, data: bytes) -> dict:
        """predict's answer for one image, with the boxes (in the image's pixels) and the inputs."""
        zoom, reading, result = self.server.workers.submit(self.read, data).result()
        if "error" in result:
            raise RequestError(422, result["error"], {k: v for k, v in result.items() if k == "not_a_digit"})
        digits = reading.digits
        kept = reading.kept
        boxes = [[round(v * zoom) for v in digit.box] for digit, ok in zip(digits, kept) if ok]
        ignored = [[round(v * zoom) for v in digit.box] for digit, ok in zip(digits, kept) if not ok]
        inputs = [png_data_url(digit.image) for digit, ok in zip(digits, kept) if ok]
        return {**result, "boxes": boxes, "ignored_boxes": ignored, "inputs": inputs}

    def save_example(self, query: str, data: bytes) -> dict:
        """Save one image of one digit as an example of the digit the query names."""
        digit = urllib.parse.parse_qs(query).get("digit", [""])
        if len(digit) != 1 or digit[0] not in DIGITS:
            raise RequestError(400, "name the example's digit: /api/examples?digit=D, D one of 0-9")
        gray, found = self.server.workers.submit(self.count_digits, data).result()
        if found != 1:
            raise RequestError(422, f"the image holds {found} digits; an example holds one")
        with self.server.saving:
            try:
                path = save_example_image(self.server.save_dir, digit[0], np.round(gray * 255).astype(np.uint8))
            except UserError as exc:
                raise RequestError(507, str(exc)) from exc
            return {"saved": f"{digit[0]}/{path.name}", "counts": example_counts(self.server.save_dir)}

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (a bad request line, too many headers, an unknown
        method) as JSON like every other answer, never its HTML page."""
        if self.request_version == "HTTP/0.9":  # what a line it could not parse is taken for: no headers
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        if code == 501:  # a method the standard library has no do_ for (TRACE, PROPFIND)
            self.refuse_method()
        else:
            self.send_json(code, {"error": one_line(message or http.HTTPStatus(code).phrase)[:200]})

    def send_json(self, status: int, body: dict) -> None:
        self.send(status, json.dumps(body).encode(), "application/json")

    def send(self, status: int, payload: bytes, kind: str) -> None:
        self.server.deadlines.done(self.connection)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")  # no other site frames the page
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format, *args) -> None:  # noqa: A002  (the standard library's name)
        pass  # one line per request would bury the address line; errors go to the client


class RequestError(Exception):
    """What is wrong with a request: an HTTP status and one line (and any extra JSON fields)."""

    def __init__(self, status: int, message: str, extra: dict | None = None):
        super().__init__(one_line(message))
        self.status, self.extra = status, extra or {}


def png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def lan_address() -> str | None:
    """This machine's address on its local network, for phones (None when there is none)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        return None
    return next((a for a in sorted(addresses) if not a.startswith("127.")), None)


SERVE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NumNet</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 0 auto; max-width: 720px; padding: 12px;
         color: #111; background: #fff; }
  h1 { font-size: 1.3em; margin: .2em 0; }
  h2 { font-size: 1.05em; margin: 1em 0 .4em; }
  #pad { width: min(92vw, 340px); height: min(92vw, 340px); border: 2px solid #333; border-radius: 6px;
         touch-action:none; background: #fff; display: block; }
  .row { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
  #answer { font-size: 3em; font-weight: bold; min-width: 2ch; }
  #answer.unsure { font-size: 1.4em; font-weight: normal; color: #a40; }
  #sure { font-size: 1.1em; color: #333; min-height: 1.3em; }
  #bars { display: flex; gap: 3px; align-items: flex-end; height: 90px; }
  #bars div { width: 18px; background: #4a78c2; position: relative; }
  #bars div.top { background: #d33; }
  #bars span { position: absolute; bottom: -18px; width: 100%; text-align: center; font-size: 12px; }
  #barsfor { font-size: .85em; color: #333; margin-top: 22px; }
  .inputs img { width: 42px; height: 42px; image-rendering: pixelated; margin: 2px; border: 1px solid #999; }
  button, select { font-size: 1em; padding: .45em .8em; margin: 2px; }
  .card { border: 1px solid #bbb; border-radius: 6px; padding: 8px; margin: 8px 0; }
  .card canvas { max-width: 100%; height: auto; }
  .note { font-size: .9em; color: #333; }
  .err { color: #b00; }
</style>
</head>
<body>
<h1>NumNet: draw a digit, or photograph a page</h1>
<div class="row">
  <canvas id="pad" width="280" height="280"></canvas>
  <div>
    <div id="answer">?</div>
    <div id="sure"></div>
    <div id="bars"></div>
    <div id="barsfor"></div>
    <div class="inputs" id="seen"></div>
  </div>
</div>
<div>
  <button id="clear">Clear</button>
  <label>Save as an example of <select id="digit"></select></label>
  <button id="save">Save drawing</button>
  <div id="counts" class="note"></div>
</div>
<h2>Photograph or upload a page</h2>
<input type="file" id="photo" accept="image/*" capture="environment" multiple>
<div id="photos"></div>
<script>
const SURE = __SURE__;  // an answer less probable than this is a guess, shown as "not sure"
const $ = id => document.getElementById(id);
const pad = $("pad"), ctx = pad.getContext("2d");
let drawing = false, last = null, pending = false, again = false, inked = false;
let cleared = 0;  // how many times the pad has been cleared: an answer for an earlier drawing is dropped

// ---- the answer: a digit or number with its probability, "not sure" under SURE
function percent(p) { return Math.round(100 * p) + "%"; }
function answerText(body) {  // body: the API's answer (a digit, or a number with its digits)
  const text = body.lines ? body.lines.join(" / ") : body.number !== undefined ? body.number : String(body.digit);
  return body.confidence < SURE ? "not sure: " + text + "? " + percent(body.confidence) : text;
}
function showAnswer(text, sure, unsure) {
  $("answer").textContent = text; $("answer").className = unsure ? "unsure" : "";
  $("sure").textContent = sure;
}

// ---- the ten bars, for one digit of what was read
for (let d = 0; d < 10; d++) {
  const bar = document.createElement("div");
  bar.innerHTML = "<span>" + d + "</span>";
  $("bars").appendChild(bar);
}
function showBars(proba, caption) {
  const top = proba ? proba.indexOf(Math.max(...proba)) : -1;
  [...$("bars").children].forEach((bar, d) => {
    bar.style.height = (proba ? 2 + 86 * proba[d] : 2) + "px"; bar.className = d === top ? "top" : "";
  });
  $("barsfor").textContent = caption || "";
}
function inputs(el, urls) {
  el.innerHTML = ""; (urls || []).forEach(u => { const i = new Image(); i.src = u; el.appendChild(i); });
}

// ---- a digit chooser for saving examples: what was read, until the user picks another
function chooser(select) {
  select.innerHTML = "<option value=''>pick a digit</option>";
  for (let d = 0; d < 10; d++) {
    const o = document.createElement("option");
    o.textContent = d;
    select.appendChild(o);
  }
  select.addEventListener("change", () => { select.dataset.picked = "1"; });
  return select;
}
function suggest(select, digit) {  // the digit read, unless the user has picked one
  if (!select.dataset.picked) select.value = digit === null ? "" : String(digit);
}
const digitChoice = chooser($("digit"));

// ---- drawing
function blank() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height); inked = false; }
blank();
function showEmpty() {
  showAnswer("?", "", false); showBars(null); inputs($("seen"), []); suggest(digitChoice, null);
}
function clearPad() {  // the empty pad shows at once, even while a read of the old drawing is on its way
  blank(); cleared++; delete digitChoice.dataset.picked; showEmpty();
}
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
function stroke(e) {
  const p = point(e);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 18; ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  last = p; inked = true; read();
}
pad.addEventListener("pointerdown", e => {
  drawing = true; last = point(e); pad.setPointerCapture(e.pointerId); stroke(e); e.preventDefault();
});
pad.addEventListener("pointermove", e => { if (drawing) { stroke(e); e.preventDefault(); } });
["pointerup", "pointercancel"].forEach(t => pad.addEventListener(t, () => {
  if (drawing) { drawing = false; read(); }
}));

async function post(url, blob) {
  const r = await fetch(url, {method: "POST", body: blob});
  return [r.status, await r.json()];
}
function canvasBlob() { return new Promise(ok => pad.toBlob(ok, "image/png")); }

async function read() {  // one request at a time; strokes drawn meanwhile are read next
  if (pending) { again = true; return; }
  pending = true;
  try {
    if (!inked) { showEmpty(); return; }
    const drawn = cleared;
    const [status, body] = await post("/api/predict", await canvasBlob());
    if (drawn !== cleared) return;  // the pad was cleared while this was read: not its answer
    if (status === 200) {
      const digits = body.digits || [body], shown = digits[digits.length - 1];
      showAnswer(answerText(body), body.confidence < SURE ? "" : percent(body.confidence) + " sure",
                 body.confidence < SURE);
      showBars(shown.probabilities, digits.length > 1 ?
               "bars: digit " + digits.length + " of " + digits.length + " (" + shown.digit + ")" : "");
      inputs($("seen"), body.inputs);
      suggest(digitChoice, digits.length === 1 ? body.digit : null);
    } else if (body.not_a_digit) {
      const guess = body.not_a_digit[0];
      showAnswer("not a digit", "at most " + guess.digit + "? " + percent(guess.confidence), true);
      showBars(guess.probabilities); inputs($("seen"), []); suggest(digitChoice, null);
    } else {
      showAnswer("?", body.error, true); showBars(null); inputs($("seen"), []);
    }
    $("answer").dataset.ready = "1";
  } finally {
    pending = false; if (again) { again = false; read(); }
  }
}

// ---- saving examples: the chosen digit, the answer shown where the user pressed
function countText(c) { return Object.entries(c).map(([d, n]) => d + ":" + n).join(" "); }
async function saveExample(blob, select, where) {
  const d = select.value;
  if (d === "") { where.innerHTML = "<span class=err>pick the digit it is first</span>"; return false; }
  const [status, body] = await post("/api/examples?digit=" + d, blob);
  if (status === 200) {
    where.textContent = "saved " + body.saved + "; examples per digit: " + countText(body.counts);
  } else {
    where.innerHTML = "<span class=err></span>";
    where.firstChild.textContent = body.error;
  }
  return status === 200;
}
$("clear").onclick = clearPad;
$("save").onclick = async () => {
  if (await saveExample(await canvasBlob(), digitChoice, $("counts"))) clearPad();
};
fetch("/api/examples").then(r => r.json()).then(b => {
  $("counts").textContent = "examples per digit: " + countText(b.counts);
});

// ---- photos: each in a card with its boxes, its digits and, for one digit, a save button
$("photo").addEventListener("change", async e => {
  for (const file of e.target.files) {
    const card = document.createElement("div");
    card.className = "card";
    $("photos").prepend(card);
    const title = document.createElement("div");
    title.textContent = file.name + ": reading...";
    card.appendChild(title);
    const [status, body] = await post("/api/predict", file);
    if (status !== 200) {
      title.textContent = file.name + ": " + body.error;
      title.className = "err result";
      continue;
    }
    const answers = body.digits || [body];
    title.className = "result"; title.dataset.number = body.number !== undefined ? body.number : body.digit;
    title.textContent = file.name + ": " + (body.digits ? "number " : "") + answerText(body)
      + (body.confidence < SURE ? "" : " (" + percent(body.confidence) + ")")
      + (body.digits ? "; digits " + answers.map(a => a.digit + " " + percent(a.confidence)).join(", ") : "");
    const img = await createImageBitmap(file), canvas = document.createElement("canvas");
    canvas.width = img.width; canvas.height = img.height;
    const c = canvas.getContext("2d"); c.drawImage(img, 0, 0);
    const w = Math.max(2, img.width / 300);
    c.lineWidth = w; c.font = (12 * w) + "px sans-serif";
    body.boxes.forEach((b, k) => {
      c.strokeStyle = c.fillStyle = "#d22"; c.strokeRect(b[2], b[0], b[3] - b[2], b[1] - b[0]);
      c.fillText(answers[k].digit, b[2], Math.max(12 * w, b[0] - 2));
    });
    (body.ignored_boxes || []).forEach(b => {
      c.strokeStyle = "#999";
      c.strokeRect(b[2], b[0], b[3] - b[2], b[1] - b[0]);
    });
    card.appendChild(canvas);
    const seen = document.createElement("div");
    seen.className = "inputs";
    card.appendChild(seen);
    inputs(seen, body.inputs);
    if (body.boxes.length === 1) {
      const row = document.createElement("div"), label = document.createElement("label");
      const select = chooser(document.createElement("select")); suggest(select, body.digit);
      const save = document.createElement("button"), said = document.createElement("div");
      label.textContent = "Save as an example of "; label.appendChild(select);
      save.textContent = "Save"; said.className = "note saved";
      save.onclick = () => saveExample(file, select, said);
      row.append(label, save, said); card.appendChild(row);
    }
  }
  e.target.value = "";
});
</script>
</body>
</html>
""".replace("__SURE__", str(SURE_ANSWER))


####################################################################################################
# Export ###########################################################################################
####################################################################################################

CANVAS_INK = 0.3  # a canvas pixel at least this much covered by the pen is part of the stroke


def cmd_export(model_path: Path, folder: Path) -> int:
    written = export_page(model_path, folder)
    size = sum(path.stat().st_size for path in written)
    print(f"exported {model_path} to {folder}/ ({', '.join(p.name for p in written)}: {size / 1024:.0f} KB); "
          f"try it with `python -m http.server -d {folder}` and http://127.0.0.1:8000/")
    return 0


def export_page(model_path: Path, folder: Path) -> list[Path]:
    """Write `folder`/index.html and its weights.bin: NumNet's network as a page that runs with no
    server, no Python and no third-party script. Nothing is written unless all of it can be."""
    model = load_reader(model_path, numpy_only=True)  # NumNet's own network, or one line why not
    check_writable_folder(folder, "export")  # a file in the way, or a read-only place: one line
    shapes = [list(w.shape) for pair in zip(model.kernels, model.biases) for w in pair]
    weights = b"".join(np.ascontiguousarray(w, "<f4").tobytes() for pair in zip(model.kernels, model.biases)
                       for w in pair)
    page = (EXPORT_PAGE.replace("__SHAPES__", json.dumps(shapes)).replace("__SURE__", str(SURE_ANSWER))
            .replace("__NOT_A_DIGIT__", str(NOT_A_DIGIT)).replace("__INK__", str(CANVAS_INK))
            .replace("__FRAMING__", json.dumps(dataclasses.asdict(FRAMING))))
    files = {"weights.bin": weights, "index.html": page.encode("utf-8")}
    for name, data in files.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    return [folder / name for name in files]


def frame_drawing(gray: np.ndarray) -> np.ndarray | None:
    """A drawing on a blank canvas (floats in [0, 1], 1 = white) -> the 28x28 uint8 input the
    network reads, framed by fit_digit as the reader frames every digit it finds; None when
    nothing is drawn. A canvas has no paper to estimate: its ink is 1 - gray. The exported page
    does exactly this in JavaScript (frameDrawing), and a test holds the two together."""
    ink = (1 - gray).astype(np.float32)
    mask = ink > CANVAS_INK
    if not mask.any():
        return None
    crop = ink_crop(mask)
    return fit_digit(ink[crop], mask[crop])


EXPORT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NumNet: draw a digit</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 0 auto; max-width: 480px; padding: 12px; color: #111; background: #fff; }
  h1 { font-size: 1.2em; margin: .2em 0 .6em; }
  #pad { width: min(92vw, 340px); height: min(92vw, 340px); border: 2px solid #333; border-radius: 6px;
         touch-action: none; background: #fff; display: block; }
  .row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-end; margin: 10px 0; }
  #answer { font-size: 3em; font-weight: bold; min-width: 2ch; }
  #answer.unsure { font-size: 1.3em; font-weight: normal; color: #a40; }
  #sure { color: #333; min-height: 1.3em; }
  #bars { display: flex; gap: 3px; align-items: flex-end; height: 90px; margin-bottom: 18px; }
  #bars div { width: 16px; background: #4a78c2; position: relative; height: 2px; }
  #bars div.top { background: #d33; }
  #bars span { position: absolute; bottom: -18px; width: 100%; text-align: center; font-size: 12px; }
  #seen { width: 56px; height: 56px; image-rendering: pixelated; border: 1px solid #999; }
  button { font-size: 1em; padding: .45em .9em; }
  .note { font-size: .85em; color: #444; }
</style>
</head>
<body>
<h1>Draw a digit</h1>
<canvas id="pad" width="280" height="280"></canvas>
<div class="row">
  <div><div id="answer">?</div><div id="sure"></div></div>
  <div id="bars"></div>
  <canvas id="seen" width="28" height="28" title="what the network sees"></canvas>
</div>
<button id="clear">Clear</button>
<p class="note">NumNet's network (Flatten, Dense 128 relu, Dense 128 relu, Dense 10 softmax), running in this page:
nothing you draw leaves your device.</p>
<script>
"use strict";
const SHAPES = __SHAPES__;         // kernel and bias of each Dense layer, as in the .keras file
const SURE = __SURE__;             // an answer less probable than this is shown as a guess
const NOT_A_DIGIT = __NOT_A_DIGIT__;  // ... and under this, NumNet's reader calls it no digit
const INK = __INK__;               // a pixel this much covered by the pen is part of a stroke
const FRAMING = __FRAMING__;       // how fit_digit frames a digit as MNIST did (FRAMING in num_net.py)
const $ = id => document.getElementById(id);

// ---- the network: dense, relu, dense, relu, dense, softmax (the Keras model's layers)
let layers = null;  // [{kernel, bias, inputs, units}], from weights.bin (float32, little-endian)

function dense(x, layer) {
  const out = new Float64Array(layer.units);
  for (let j = 0; j < layer.units; j++) out[j] = layer.bias[j];
  for (let i = 0; i < layer.inputs; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * layer.units;
    for (let j = 0; j < layer.units; j++) out[j] += xi * layer.kernel[row + j];
  }
  return out;
}
const relu = x => x.map(v => Math.max(v, 0));
function softmax(x) {
  const top = Math.max(...x), e = x.map(v => Math.exp(v - top)), sum = e.reduce((a, b) => a + b, 0);
  return Array.from(e, v => v / sum);
}
function probabilities(input) {  // input: 784 pixels, 0-255, as MNIST stores them
  const x = Float64Array.from(input, v => Math.fround(v / 255));  // normalize, as training does
  return softmax(dense(relu(dense(relu(dense(x, layers[0])), layers[1])), layers[2]));
}

// ---- framing a drawing as MNIST frames a digit, exactly as NumNet's fit_digit does in Python:
// crop to the ink, fit 20x20 keeping the aspect, darkest 30% of the ink solid, thin strokes
// thickened to MNIST's width, centre of mass in the middle of 28x28. Pillow's resampling is
// written out below, so that both give the same pixels.
const roundEven = v => { const r = Math.round(v); return Math.abs(v % 1) === 0.5 && r % 2 ? r - 1 : r; };

function frameDrawing(ink, width, height) {  // ink: Float32Array, 0 (paper) to 1 (pen)
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    if (ink[y * width + x] > INK) { top = Math.min(top, y); bottom = y; left = Math.min(left, x); right = Math.max(right, x); }
  }
  if (bottom < 0) return null;
  const w = right - left + 1, h = bottom - top + 1, crop = new Float32Array(w * h), mask = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = ink[(top + y) * width + left + x];
    crop[y * w + x] = v; mask[y * w + x] = v > INK ? 1 : 0;
  }
  return fitDigit(crop, mask, w, h);
}

function fitDigit(ink, mask, w, h) {
  const scale = FRAMING.box / Math.max(w, h);
  const inked = []; ink.forEach((v, i) => { if (mask[i]) inked.push(v); });
  // float32 arithmetic, as NumPy's:
  const solid = Math.fround(Math.max(percentile(inked, FRAMING.solid_percentile), 1e-6));
  const level = v => Math.min(Math.max(Math.fround(v / solid), 0), 1);
  let img = {w, h, data: Uint8Array.from(ink, (v, i) => (mask[i] ? Math.floor(Math.fround(level(v) * 255)) : 0))};
  const widthInBox = meanStrokeWidth(mask, w, h) * scale;
  if (widthInBox < FRAMING.stroke * FRAMING.thin) {
    // Thicken at 3x the final size, where one filter step is a third of a final pixel.
    const mid = FRAMING.supersample * FRAMING.box / Math.max(w, h);
    img = resize(img, Math.max(1, roundEven(w * mid)), Math.max(1, roundEven(h * mid)), box);
    const steps = Math.min(Math.max(roundEven((FRAMING.stroke - widthInBox) * FRAMING.supersample / 2), 1),
                           FRAMING.max_steps);
    for (let s = 0; s < steps; s++) img = maxFilter(img);
  }
  const patch = resize(img, Math.max(1, roundEven(w * scale)), Math.max(1, roundEven(h * scale)), lanczos);
  return centreOfMassFrame(patch);
}

function percentile(values, q) {  // NumPy's default, linear between the two nearest, in float32
  const v = Float32Array.from(values).sort(), at = q / 100 * (v.length - 1), below = Math.trunc(at);
  const low = v[below], high = v[Math.min(below + 1, v.length - 1)], t = at - below, d = Math.fround(high - low);
  return t >= 0.5 ? Math.fround(high - Math.fround(d * Math.fround(1 - t))) : Math.fround(low + Math.fround(d * Math.fround(t)));
}

function meanStrokeWidth(mask, w, h) {  // area over half the perimeter (pixels with a side open)
  let area = 0, inside = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = y * w + x;
    if (!mask[i]) continue;
    area++;
    if (y > 0 && y < h - 1 && x > 0 && x < w - 1 && mask[i - w] && mask[i + w] && mask[i - 1] && mask[i + 1]) inside++;
  }
  return 2 * area / Math.max(area - inside, 1);
}

function maxFilter(img) {  // Pillow's MaxFilter(3)
  const out = new Uint8Array(img.w * img.h);
  for (let y = 0; y < img.h; y++) for (let x = 0; x < img.w; x++) {
    let m = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < img.h && xx >= 0 && xx < img.w) m = Math.max(m, img.data[yy * img.w + xx]);
    }
    out[y * img.w + x] = m;
  }
  return {w: img.w, h: img.h, data: out};
}

// Pillow's resampling of an 8-bit image: a horizontal then a vertical pass, each a weighted sum
// with the filter's weights in 22-bit fixed point, rounded to 0-255 in between.
const box = {support: 0.5, f: x => (x > -0.5 && x <= 0.5 ? 1 : 0)};
const sinc = x => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
const lanczos = {support: 3, f: x => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0)};
const FIXED = 1 << 22;

function weights(inSize, outSize, filter) {
  const scale = inSize / outSize, stretch = Math.max(scale, 1), support = filter.support * stretch, taps = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0), last = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const k = [];
    for (let i = first; i < last; i++) k.push(filter.f((i - centre + 0.5) * (1 / stretch)));
    const sum = k.reduce((a, b) => a + b, 0);
    taps.push({first, k: k.map(v => Math.trunc((sum !== 0 ? v / sum : v) * FIXED + (v < 0 ? -0.5 : 0.5)))});
  }
  return taps;
}
function clip8(sum) { const v = Math.floor(sum / FIXED); return v < 0 ? 0 : v > 255 ? 255 : v; }

function resize(img, w, h, filter) {
  let cur = img;
  if (w !== cur.w) {
    const taps = weights(cur.w, w, filter), out = new Uint8Array(w * cur.h);
    for (let y = 0; y < cur.h; y++) for (let x = 0; x < w; x++) {
      let s = FIXED / 2;
      taps[x].k.forEach((k, t) => { s += cur.data[y * cur.w + taps[x].first + t] * k; });
      out[y * w + x] = clip8(s);
    }
    cur = {w, h: cur.h, data: out};
  }
  if (h !== cur.h) {
    const taps = weights(cur.h, h, filter), out = new Uint8Array(cur.w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < cur.w; x++) {
      let s = FIXED / 2;
      taps[y].k.forEach((k, t) => { s += cur.data[(taps[y].first + t) * cur.w + x] * k; });
      out[y * cur.w + x] = clip8(s);
    }
    cur = {w: cur.w, h, data: out};
  }
  return cur;
}

function centreOfMassFrame(patch) {  // 0-255 pixels, scaled to full white, centred by mass in 28x28
  const top = Math.max(...patch.data), p = Float32Array.from(patch.data, v => Math.min(Math.max(Math.fround(v / Math.max(top, 1)), 0), 1));
  let total = 0, rows = 0, cols = 0;
  p.forEach((v, i) => { total += v; rows += v * Math.floor(i / patch.w); cols += v * (i % patch.w); });
  const comR = total > 0 ? rows / total : (patch.h - 1) / 2, comC = total > 0 ? cols / total : (patch.w - 1) / 2;
  const y0 = Math.min(Math.max(roundEven(13.5 - comR), 0), 28 - patch.h), x0 = Math.min(Math.max(roundEven(13.5 - comC), 0), 28 - patch.w);
  const frame = new Uint8Array(784);
  for (let y = 0; y < patch.h; y++) for (let x = 0; x < patch.w; x++) frame[(y0 + y) * 28 + x0 + x] = roundEven(Math.fround(p[y * patch.w + x] * 255));
  return frame;
}

// ---- the page: draw, read after every stroke segment, show the answer, its probability and the bars
const pad = $("pad"), ctx = pad.getContext("2d", {willReadFrequently: true});
let drawing = false, last = null, queued = false;
for (let d = 0; d < 10; d++) { const bar = document.createElement("div"); bar.innerHTML = "<span>" + d + "</span>"; $("bars").appendChild(bar); }

function blank() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height); }
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
function line(from, to) {
  ctx.strokeStyle = "#000"; ctx.lineWidth = 18; ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(from[0], from[1]); ctx.lineTo(to[0], to[1]); ctx.stroke();
}
pad.addEventListener("pointerdown", e => {
  drawing = true; last = point(e); line(last, last); later(); e.preventDefault();
  try { pad.setPointerCapture(e.pointerId); } catch (_) { /* a pointer the browser does not track */ }
});
pad.addEventListener("pointermove", e => { if (drawing) { const p = point(e); line(last, p); last = p; later(); e.preventDefault(); } });
["pointerup", "pointercancel"].forEach(t => pad.addEventListener(t, () => { if (drawing) { drawing = false; read(); } }));
$("clear").onclick = () => { blank(); read(); };

function later() { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; read(); }); } }

function canvasInk() {  // the canvas as ink: 0 on white paper, 1 under the black pen
  const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data, ink = new Float32Array(pad.width * pad.height);
  for (let i = 0; i < ink.length; i++) ink[i] = Math.fround(1 - Math.fround(rgba[4 * i] / 255));
  return ink;
}

function read() {
  if (!layers) return;
  const input = frameDrawing(canvasInk(), pad.width, pad.height);
  if (!input) { show(null, null); return; }
  show(input, probabilities(input));
}

function show(input, proba) {
  window.reading = input && {input: Array.from(input), probabilities: proba};  // for tests and the curious
  const seen = $("seen").getContext("2d"), pixels = seen.createImageData(28, 28);
  (input || new Uint8Array(784)).forEach((v, i) => { pixels.data.set([255 - v, 255 - v, 255 - v, 255], 4 * i); });
  seen.putImageData(pixels, 0, 0);
  const digit = proba ? proba.indexOf(Math.max(...proba)) : -1, p = proba ? proba[digit] : 0;
  [...$("bars").children].forEach((bar, d) => {
    bar.style.height = (proba ? 2 + 86 * proba[d] : 2) + "px"; bar.className = d === digit ? "top" : "";
  });
  const percent = Math.round(100 * p) + "%";
  $("answer").textContent = !proba ? "?" : p < SURE ? "not sure: " + digit + "? " + percent : String(digit);
  $("answer").className = proba && p < SURE ? "unsure" : "";
  $("sure").textContent = !proba ? "" : p < NOT_A_DIGIT ? "maybe not a digit at all" : p < SURE ? "" : percent + " sure";
  $("answer").dataset.ready = "1";
}

blank();
fetch("weights.bin").then(r => r.arrayBuffer()).then(buffer => {
  const all = new Float32Array(buffer);
  let at = 0;
  const arrays = SHAPES.map(shape => { const n = shape.reduce((a, b) => a * b, 1); const a = all.subarray(at, at + n); at += n; return a; });
  layers = [0, 2, 4].map(i => ({kernel: arrays[i], bias: arrays[i + 1], inputs: SHAPES[i][0], units: SHAPES[i][1]}));
  $("answer").dataset.loaded = "1";
  read();
});
</script>
</body>
</html>
"""


####################################################################################################
# Command line #####################################################################################
####################################################################################################


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    previous = signal.signal(signal.SIGTERM, _terminated)
    written = WRITTEN.set([])
    try:
        return run_command(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"num_net: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"num_net: interrupted; {saved_before_stopping()}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"num_net: terminated (SIGTERM); {saved_before_stopping()}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        WRITTEN.reset(written)
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame):
    raise Terminated


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
        return cmd_draw(run, args.save_dir)
    if args.command == "serve":
        return cmd_serve(run, args.host, args.port, args.save_dir)
    if args.command == "export":
        return cmd_export(args.model, args.folder)
    preflight(run, writes_model=args.command == "train")
    if args.command == "predict":
        return cmd_predict(run, args.paths, args.json)
    if args.command == "train":
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, validation_split=args.validation_split, seed=args.seed
        )
        # Your examples are read first: a bad folder fails before the slow part.
        return cmd_train(run, cfg, load_examples(args.extra) if args.extra else None)
    return cmd_evaluate(run, args.images, score_folder)


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
    train_p.add_argument("--batch-size", type=auto_or_positive_int, default="auto",
                         help="images per step; auto: " + ", ".join(f"{size} from {epochs} epochs"
                                                                    for epochs, size in BATCH_LADDER[:-1])
                         + f", else {BATCH_LADDER[-1][1]}")
    train_p.add_argument(
        "--validation-split", type=fraction_below_one, default=defaults.validation_split,
        help="fraction of the training images held out (the last ones) for validation",
    )
    train_p.add_argument("--seed", type=int, default=defaults.seed, help="same seed, same model (on one machine)")
    train_p.add_argument("--extra", type=Path, nargs="+", default=[], metavar="DIR",
                         help="your own labelled examples to train on as well (subfolders 0-9, or files "
                         "named <digit>_<anything>.png), e.g. saved by `draw`")
    eval_p = commands.add_parser("evaluate", help="score a saved model on the test set and labelled folders",
                                 formatter_class=fmt)
    add_common_flags(eval_p)
    eval_p.add_argument("--images", type=Path, nargs="+", default=[], metavar="DIR",
                        help="also score labelled folders (subfolders 0-9, or files named <label>_<anything>.png); "
                        f"without --data or ${DATA_ENV}, only these")
    predict_p = commands.add_parser("predict", help="read digits in your own images", formatter_class=fmt)
    predict_p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of them")
    predict_p.add_argument("--json", action="store_true", help="print one JSON array instead of lines")
    add_common_flags(predict_p, data=False, outputs=PREDICT_OUTPUT)
    draw_p = commands.add_parser("draw", help="draw a digit with the mouse and watch the prediction",
                                 formatter_class=fmt)
    add_common_flags(draw_p, data=False, outputs=None)
    draw_p.add_argument("--save-dir", type=Path, default=DEFAULT_SAVE_DIR,
                        help="where the digit keys 0-9 save your drawing as an example (DIR/<digit>/<time>.png)")
    serve_p = commands.add_parser("serve", help="a web page to draw, photograph and teach, for phones and desktops",
                                  formatter_class=fmt)
    serve_p.add_argument("--host", default="127.0.0.1",
                         help="address to listen on; 0.0.0.0 lets phones on your network in (and anyone else on it)")
    serve_p.add_argument("--port", type=port_number, default=8000, help="port to listen on; 0 picks a free one")
    add_common_flags(serve_p, data=False, outputs=None)
    serve_p.add_argument("--save-dir", type=Path, default=DEFAULT_SAVE_DIR,
                         help="where the page saves your examples (DIR/<digit>/<time>.png, as draw does)")
    export_p = commands.add_parser("export", help="write the network as a static web page (no server, no Python)",
                                   formatter_class=fmt)
    export_p.add_argument("folder", type=Path, metavar="DIR", help="folder for index.html and weights.bin")
    add_common_flags(export_p, data=False, outputs=None)
    return parser


def add_common_flags(parser: argparse.ArgumentParser, data: bool = True,
                     outputs: str | None = "plots and metrics.json") -> None:
    """Flags the commands share: where MNIST is (`data`), where the model lives, where `outputs`
    go and whether to show plots (for commands that write any), full tracebacks."""
    if data:
        parser.add_argument(
            "--data",
            default=os.environ.get(DATA_ENV) or None,
            help=f"local MNIST: an .npz (x_train, y_train, x_test, y_test) or a folder of the four "
            f"IDX files; default ${DATA_ENV}, else download through Keras",
        )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model file (.keras)")
    if outputs:
        parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help=f"folder for {outputs}")
        parser.add_argument("--no-show", action="store_true", help="never open plot windows (PNGs are always saved)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def auto_or_positive_int(text: str) -> int | None:
    """A positive batch size, or "auto" (None): chosen from the number of epochs."""
    return None if text == "auto" else positive_int(text)


def fraction_below_one(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
