"""What the tests share besides fixtures: where things are, small learnable data, real MNIST,
drawn pages, how a command's failure is checked, and how the draw window is driven."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "handwritten.keras"  # the committed model
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import num_net  # noqa: E402


def synthetic_arrays(n_train: int = 600, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Tiny learnable MNIST-shaped data: digit d is a bright bar in row band d, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, d in enumerate(y):
            x[i, 3 + 2 * d : 5 + 2 * d, 4:24] = 255
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    magic = 0x00000800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def real_data_path() -> Path:
    """The real MNIST from NUMNET_DATA: required in CI, skipped (with the reason) elsewhere."""
    value = os.environ.get("NUMNET_DATA")
    if value and Path(value).exists():
        return Path(value)
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the real-MNIST tests: NUMNET_DATA={value!r} does not exist")
    pytest.skip("set NUMNET_DATA to a local MNIST (.npz or IDX folder) to run real-data tests")


def drawn_digit(size=(300, 200), box=(120, 40, 160, 170), dark_ink=True, width=12) -> np.ndarray:
    """A page with a '1'-like bar and a foot, as grayscale floats (1 = white)."""
    paper, ink = (255, 0) if dark_ink else (0, 255)
    img = Image.new("L", size, paper)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = box
    draw.line([(right, top), (left + 10, bottom)], fill=ink, width=width)
    draw.line([(left - 10, bottom), (right + 10, bottom)], fill=ink, width=width)
    return np.asarray(img, np.float32) / 255


def assert_picture(path: Path, min_size=(300, 150)) -> None:
    """A written figure is a whole PNG that Pillow decodes, of a readable size, and not one flat
    colour (something was drawn on it)."""
    with Image.open(path) as img:
        assert img.format == "PNG", path
        img.load()  # decodes every row: a truncated file fails here
        assert img.width >= min_size[0] and img.height >= min_size[1], (path, img.size)
        assert np.asarray(img.convert("L")).std() > 5, f"{path} is blank"


def run_main(args: list[str], capsys) -> tuple[int, list[str]]:
    """num_net.main(args) in this process: its exit code and its stderr lines."""
    code = num_net.main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def assert_one_line_error(code: int, err: list[str], *needles: str) -> None:
    """A failure as a user should see it: a non-zero exit and one `num_net: error:` line holding
    every needle, no traceback."""
    assert code != 0
    assert len(err) == 1, err
    assert err[0].startswith("num_net: error:") and "Traceback" not in err[0]
    for needle in needles:
        assert needle in err[0], (needle, err[0])


# Runs a script with Python's own Ctrl-C handler in place: a shell starts background commands with
# SIGINT ignored, and a child would inherit that, whoever runs the suite.
INTERRUPTIBLE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def interruptible(cmd: list[str]) -> list[str]:
    """`cmd` ([python, script, args...]) run so that SIGINT raises KeyboardInterrupt in it."""
    return [cmd[0], "-c", INTERRUPTIBLE, *cmd[1:]]


def send(pad, name: str, x: float, y: float) -> None:
    """Deliver a mouse event at canvas-pixel (x, y) the way a GUI backend would."""
    from matplotlib.backend_bases import MouseEvent

    sx, sy = pad.ax_canvas.transData.transform((x, y))
    pad.fig.canvas.callbacks.process(name, MouseEvent(name, pad.fig.canvas, sx, sy, button=1))


def stroke(pad, points) -> None:
    """Draw one stroke through `points` (canvas pixels): press, moves, release."""
    send(pad, "button_press_event", *points[0])
    for point in points[1:]:
        send(pad, "motion_notify_event", *point)
    send(pad, "button_release_event", *points[-1])
