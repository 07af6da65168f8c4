"""Fast reading: predict and draw run NumNet's network in NumPy, without TensorFlow, and refuse
broken models; results stream out for big folders; training that diverges saves nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import num_net
from helpers.support import MODEL, ROOT, assert_one_line_error, drawn_digit, synthetic_arrays


def test_the_committed_model_is_read_with_numpy():
    assert isinstance(num_net.load_reader(MODEL), num_net.NumPyNetwork)


def test_numpy_probabilities_equal_keras_on_the_whole_test_set(mnist_test, model):
    x = num_net.normalize(mnist_test[0])
    ours = num_net.load_reader(MODEL).probabilities(x)
    theirs = num_net.predict_proba(model, x)
    assert ours.shape == theirs.shape == (10000, 10)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()


def test_predict_answers_without_importing_tensorflow(tmp_path):
    image = tmp_path / "one.png"
    Image.fromarray((drawn_digit() * 255).astype(np.uint8)).save(image)
    code = (f"import sys, num_net; rc = num_net.main(['predict', {str(image)!r}, '--model', {str(MODEL)!r}, "
            f"'--out-dir', {str(tmp_path)!r}, '--no-show']); print('tensorflow' in sys.modules, 'keras' in sys.modules, rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip().splitlines()[-1] == "False False 0", proc.stderr[-500:]
    assert ": 1 (" in proc.stdout


def test_other_architectures_go_through_keras(tmp_path, capsys):
    keras = num_net.import_keras()
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "small.keras"
    model.save(path)
    reader = num_net.load_reader(path)
    assert not isinstance(reader, num_net.NumPyNetwork)
    assert num_net.predict_proba(reader, np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    model = num_net.build_model()
    weights = model.get_weights()
    weights[2][:] = np.nan
    model.set_weights(weights)
    path = tmp_path_factory.mktemp("nan") / "nan.keras"
    model.save(path)
    return path


def test_a_model_with_nan_weights_is_refused_everywhere(nan_model, tmp_path, capsys):
    image = tmp_path / "one.png"
    Image.fromarray((drawn_digit() * 255).astype(np.uint8)).save(image)
    code = num_net.main(["predict", str(image), "--model", str(nan_model), "--out-dir", str(tmp_path), "--no-show"])
    assert_one_line_error(code, capsys.readouterr().err.strip().splitlines(), str(nan_model), "not all finite")
    with pytest.raises(num_net.UserError, match="not all finite"):
        num_net.load_model(nan_model)  # evaluate's loader
    with pytest.raises(num_net.UserError, match="not all finite"):
        num_net.load_reader(nan_model)  # draw's loader


def test_diverged_training_saves_nothing(tmp_path, monkeypatch, capsys):
    np.savez(tmp_path / "tiny.npz", **synthetic_arrays())
    model = tmp_path / "handwritten.keras"
    model.write_bytes(MODEL.read_bytes())
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    explode = num_net.for_length

    def diverging(cfg):
        return num_net.dataclasses.replace(explode(cfg), learning_rate=1e12)

    monkeypatch.setattr(num_net, "for_length", diverging)
    code = num_net.main(["train", "--data", str(tmp_path / "tiny.npz"), "--epochs", "3", "--model", str(model),
                         "--out-dir", str(tmp_path / "out"), "--no-show"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert_one_line_error(code, err.strip().splitlines()[-1:], "diverged", "untouched")  # after the `data:` line
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


def test_data_that_is_not_a_regular_file_says_so(tmp_path, capsys):
    code = num_net.main(["train", "--data", "/dev/null", "--out-dir", str(tmp_path), "--no-show"])
    assert_one_line_error(code, capsys.readouterr().err.strip().splitlines(), "/dev/null", "not a regular file or folder")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """60 small pages of a drawn 1, enough to be read by worker processes, and one broken file."""
    root = tmp_path_factory.mktemp("folder")
    page = Image.fromarray((drawn_digit() * 255).astype(np.uint8))
    for n in range(60):
        page.save(root / f"page{n:03d}.png")
    (root / "page030.png").write_bytes(b"not a png")
    return root


def test_a_folder_is_read_by_workers_after_training_in_the_same_process(folder):
    data = synthetic_arrays(n_train=600)
    num_net.train(num_net.build_model(), num_net.normalize(data["x_train"]), data["y_train"],
                  num_net.TrainConfig(epochs=1), verbose=0)
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), num_net.image_files([folder]))
    assert [r.get("digit") for r in results].count(1) == 59


def test_results_come_in_order_a_chunk_at_a_time(folder):
    files = num_net.image_files([folder])
    chunks = list(num_net.predict_chunks(num_net.load_reader(MODEL), files, chunk=25))
    assert [len(results) for results, _ in chunks] == [25, 25, 10]
    results = [r for rs, _ in chunks for r in rs]
    assert [r["file"] for r in results] == [str(f) for f in files]
    assert [r.get("digit") for r in results].count(1) == 59 and "error" in results[30]


def test_json_stays_one_array_for_a_folder(folder, tmp_path, capsys):
    code = num_net.main(["predict", str(folder), "--json", "--model", str(MODEL), "--out-dir", str(tmp_path), "--no-show"])
    captured = capsys.readouterr()
    assert code == 1
    rows = json.loads(captured.out)
    assert len(rows) == 60 and rows[0]["digit"] == 1 and "error" in rows[30]
    errors = captured.err.strip().splitlines()  # the one unreadable file, then where predict.png went
    assert len(errors) == 2 and errors[0].startswith("num_net: error:") and errors[1] == f"saved {tmp_path / 'predict.png'}"
    assert (tmp_path / "predict.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
