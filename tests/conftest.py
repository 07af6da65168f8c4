"""The fixtures several test files use, and pytest's settings; what the tests share besides
fixtures is in helpers/support.py. Test files are named for the part of num_net.py they test."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # num_net.py is beside tests/: plain `pytest` finds it as `python -m pytest` does

import num_net  # noqa: E402
from helpers.support import MODEL, real_data_path  # noqa: E402


def pytest_configure(config) -> None:
    """Every skip says why in the summary (-rs), and third-party warnings that are not ours to fix
    are filtered by name."""
    if not {"s", "a", "A"} & set(config.option.reportchars or ""):
        config.option.reportchars = (config.option.reportchars or "") + "s"
    # Keras calls np.array() on its tensors, which NumPy 2 warns about inside Keras's own code.
    config.addinivalue_line("filterwarnings",
                            "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(scope="module")
def mnist_test():
    """The real MNIST test set (images, labels)."""
    with np.load(real_data_path(), allow_pickle=False) as npz:
        return npz["x_test"], npz["y_test"]


@pytest.fixture(scope="module")
def model():
    """The committed model, loaded through Keras."""
    return num_net.load_model(MODEL)


@pytest.fixture(scope="module")
def reader():
    """The committed model as predict, draw and serve read with it (NumPy)."""
    return num_net.load_reader(MODEL)


@pytest.fixture
def pad(model, tmp_path):
    """A DrawPad on the non-interactive Agg backend, saving into the test's own folder (a user's
    my_digits/ is never counted or written)."""
    plt = num_net.pyplot(show=False)
    pad = num_net.DrawPad(plt, model, out=io.StringIO(), save_dir=tmp_path / "mine")
    pad.fig.canvas.draw()  # lay out the axes so data -> screen transforms are final
    yield pad
    plt.close(pad.fig)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright: required in CI, skipped (with the reason) elsewhere."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: install Debian's chromium (.ci/run does)")
        pytest.skip("the browser tests need Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()

