"""Failing well: bad data, bad models, bad images and interruptions give one line and lose nothing."""

from __future__ import annotations

import gzip
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import num_net
from helpers.support import ROOT, assert_one_line_error, interruptible, run_main, synthetic_arrays, write_idx


# ---------------------------------------------------------------- data


@pytest.fixture
def bad_data(tmp_path):
    arrays = synthetic_arrays(n_train=100, n_test=20)
    files = {}
    files["truncated npz"] = tmp_path / "truncated.npz"
    np.savez(files["truncated npz"], **arrays)
    files["truncated npz"].write_bytes(files["truncated npz"].read_bytes()[:5000])
    files["not an npz"] = tmp_path / "notes.npz"
    files["not an npz"].write_text("just text")
    files["empty folder"] = tmp_path / "empty"
    files["empty folder"].mkdir()
    files["idx wrong magic"] = tmp_path / "idx_magic"
    files["idx truncated"] = tmp_path / "idx_short"
    for folder in (files["idx wrong magic"], files["idx truncated"]):
        folder.mkdir()
        for key, name in num_net.IDX_FILES.items():
            write_idx(folder / name, arrays[key], compress=False)
    images = files["idx wrong magic"] / num_net.IDX_FILES["x_train"]
    images.write_bytes(b"\x00\x00\x08\x05" + images.read_bytes()[4:])
    labels = files["idx truncated"] / num_net.IDX_FILES["y_test"]
    labels.write_bytes(gzip.compress(labels.read_bytes()[:-5]))
    return files


@pytest.mark.parametrize("case, needle", [
    ("truncated npz", "not a readable .npz"),
    ("not an npz", "not a readable .npz"),
    ("empty folder", "train-images-idx3-ubyte"),
    ("idx wrong magic", "magic"),
    ("idx truncated", "payload"),
])
def test_bad_data_files_give_one_line(bad_data, case, needle, tmp_path, capsys):
    path = bad_data[case]
    code, err = run_main(["train", "--data", str(path), "--out-dir", str(tmp_path / "o"),
                          "--model", str(tmp_path / "m.keras"), "--no-show"], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "m.keras").exists()


def test_debug_flag_shows_the_traceback(tmp_path, capsys):
    num_net.main(["train", "--data", str(tmp_path / "missing.npz"), "--out-dir", str(tmp_path), "--debug"])
    assert "Traceback" in capsys.readouterr().err


def test_unwritable_places_fail_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data = ["--data", str(ROOT / "tests")]  # exists; never read because the checks come first
    code, err = run_main(["train", *data, "--out-dir", str(blocker / "out"), "--no-show"], capsys)
    assert_one_line_error(code, err, "output folder")
    code, err = run_main(["train", *data, "--model", str(blocker / "m.keras"), "--out-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "model folder")
    code, err = run_main(["train", *data, "--model", str(tmp_path / "m.h5"), "--out-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "must end in .keras")


# ---------------------------------------------------------------- models


def save(model, path: Path) -> Path:
    model.save(path)
    return path


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    keras = num_net.import_keras()
    root = tmp_path_factory.mktemp("models")
    corrupt = root / "corrupt.keras"
    corrupt.write_bytes((ROOT / "handwritten.keras").read_bytes()[:20000])
    text = root / "text.keras"
    text.write_text("not a model")
    dense = keras.layers.Dense
    return {
        "corrupt": (corrupt, "not a .keras model file (not a zip archive)"),
        "text": (text, "not a .keras model file"),
        "wrong input": (save(keras.Sequential([keras.Input((32, 32)), keras.layers.Flatten(), dense(10)]),
                             root / "input.keras"), "not a NumNet model"),
        "wrong output": (save(keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), dense(5)]),
                              root / "output.keras"), "not a NumNet model"),
        "lambda": (save(keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(lambda x: x * 2),
                                          keras.layers.Flatten(), dense(10)]), root / "lambda.keras"),
                   "refused"),
    }


@pytest.mark.parametrize("case", ["corrupt", "text", "wrong input", "wrong output", "lambda"])
def test_bad_models_are_refused_in_one_line(bad_models, case, tmp_path, capsys):
    path, needle = bad_models[case]
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (50, 50), 0).save(image)
    code, err = run_main(["predict", str(image), "--model", str(path), "--out-dir", str(tmp_path), "--no-show"],
                         capsys)
    assert_one_line_error(code, err, str(path), needle)


def test_keras_refuses_a_models_code_even_where_numnets_own_check_misses_it(bad_models, monkeypatch):
    """Keras loads in safe mode: a Lambda's Python code is refused, whatever NumNet's own check found."""
    path, _ = bad_models["lambda"]
    monkeypatch.setattr(num_net, "carries_code", lambda config: False)  # as if NumNet's check missed it
    with pytest.raises(num_net.UserError, match="not a loadable Keras model"):
        num_net.load_model(path)


# ---------------------------------------------------------------- images


def test_truncated_image_fails_alone(tmp_path, capsys):
    from PIL import Image

    good = tmp_path / "good.png"
    page = np.full((120, 120), 255, np.uint8)
    page[30:90, 55:65] = 0
    Image.fromarray(page).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    code = num_net.main(["predict", str(good), str(truncated), "--model", str(ROOT / "handwritten.keras"),
                         "--out-dir", str(tmp_path), "--no-show"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.startswith(f"{good}: 1 ")
    assert_one_line_error(code, captured.err.strip().splitlines(), str(truncated), "not a readable image")


# ---------------------------------------------------------------- nothing is lost


def test_failed_save_leaves_the_old_model_untouched(tmp_path, monkeypatch):
    target = tmp_path / "handwritten.keras"
    target.write_bytes(b"the user's precious model")

    def exploding(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a mod")
        raise OSError(28, "No space left on device")

    model = num_net.build_model()
    monkeypatch.setattr(type(model), "save", exploding)  # the disk fills halfway through the write
    with pytest.raises(num_net.UserError, match="No space left"):
        num_net.save_model(model, target)
    assert target.read_bytes() == b"the user's precious model"
    assert [p.name for p in tmp_path.iterdir()] == ["handwritten.keras"]


def test_ctrl_c_during_training_exits_130_and_keeps_the_model(tmp_path):
    np.savez(tmp_path / "tiny.npz", **synthetic_arrays(n_train=2000, n_test=50))
    model = tmp_path / "handwritten.keras"
    model.write_bytes((ROOT / "handwritten.keras").read_bytes())
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    cmd = [sys.executable, str(ROOT / "num_net.py"), "train", "--data", str(tmp_path / "tiny.npz"),
           "--epochs", "100000", "--batch-size", "32", "--model", str(model), "--out-dir", str(tmp_path / "out"),
           "--no-show"]
    proc = subprocess.Popen(interruptible(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while "Epoch 2/" not in (line := proc.stdout.readline()):  # training is under way
        assert line and time.monotonic() < deadline, "training never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handwritten.keras", "tiny.npz"]  # no empty out/ either
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    def offline():
        raise num_net.UserError("could not download MNIST (no network); use --data")

    monkeypatch.setattr(num_net, "download_mnist", offline)
    monkeypatch.delenv("NUMNET_DATA", raising=False)
    code = num_net.main(["train", "--out-dir", str(tmp_path / "outputs" / "run"), "--model", str(tmp_path / "m.keras"),
                         "--no-show"])
    assert code == 1 and list(tmp_path.iterdir()) == []
