"""Tests for num_net.py: loaders, model, the train/evaluate commands, and real-MNIST gates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import num_net
from helpers.support import ROOT, assert_picture, real_data_path, synthetic_arrays, write_idx



# ---------------------------------------------------------------- helpers


@pytest.fixture
def arrays():
    return synthetic_arrays()


@pytest.fixture
def npz_path(tmp_path, arrays):
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def real_dataset():
    return num_net.load_dataset(str(real_data_path()))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One end-to-end `train` on synthetic data, shared by the tests that inspect its outputs."""
    root = tmp_path_factory.mktemp("tiny_run")
    np.savez(root / "tiny.npz", **synthetic_arrays())
    model, out = root / "model.keras", root / "out"
    args = ["train", "--data", str(root / "tiny.npz"), "--epochs", "3", "--batch-size", "64"]
    code = num_net.main([*args, "--model", str(model), "--out-dir", str(out), "--no-show"])
    return {"code": code, "root": root, "model": model, "out": out, "args": args}


# ---------------------------------------------------------------- data


def test_npz_loader_reads_keras_layout(npz_path, arrays):
    ds = num_net.load_dataset(str(npz_path))
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert not ds.canonical and "custom data" in ds.describe()


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_idx_folder_loader(tmp_path, arrays, compress):
    for key, name in num_net.IDX_FILES.items():
        write_idx(tmp_path / (name + (".gz" if compress else "")), arrays[key], compress)
    ds = num_net.load_dataset(str(tmp_path))
    for key in num_net.SPLITS:
        np.testing.assert_array_equal(getattr(ds, key), arrays[key])


def test_idx_rejects_bad_magic_and_truncation(tmp_path, arrays):
    path = tmp_path / "images"
    write_idx(path, arrays["x_test"], compress=False)
    data = path.read_bytes()
    path.write_bytes(b"\x00\x00\x09\x03" + data[4:])
    with pytest.raises(num_net.UserError, match="magic"):
        num_net.read_idx(path)
    path.write_bytes(data[:-10])
    with pytest.raises(num_net.UserError, match="payload"):
        num_net.read_idx(path)


def test_npz_missing_key_and_pickled_arrays_are_refused(tmp_path, arrays):
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "y_test"})
    with pytest.raises(num_net.UserError, match="y_test"):
        num_net.load_dataset(str(missing))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "y_test": np.array([object()] * 3, dtype=object)})
    with pytest.raises(num_net.UserError, match="pickled"):
        num_net.load_dataset(str(pickled))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_train": np.full(600, 10, np.uint8)}, "outside 0-9"),
        ({"y_test": np.zeros(99, np.uint8)}, "100 test images but 99 labels"),
        ({"x_train": np.zeros((600, 28, 28), np.float32)}, "uint8"),
        ({"x_test": np.zeros((100, 32, 32), np.uint8)}, r"\(N, 28, 28\)"),
    ],
)
def test_bad_arrays_are_refused(arrays, change, message):
    with pytest.raises(num_net.UserError, match=message):
        num_net.check_arrays({**arrays, **change}, "test.npz")


def test_normalize_maps_uint8_to_unit_float32():
    x = num_net.normalize(np.array([[0, 51, 255]], np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[0.0, 0.2, 1.0]])


# ---------------------------------------------------------------- model


def test_architecture_is_exactly_numnet():
    model = num_net.build_model()
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [layer.__class__.__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]
    assert [layer.units for layer in dense] == [128, 128, 10]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "softmax"]
    assert model.count_params() == 118_282
    assert tuple(model.input_shape) == (None, 28, 28)


# ---------------------------------------------------------------- writer-style augmentation


def test_zero_draws_leave_images_unchanged_and_a_shift_moves_them():
    cfg = num_net.TrainConfig()
    images = np.zeros((2, 28, 28), np.float32)
    images[:, 10:18, 12:15] = 1.0
    still = num_net.affine_warp(images, num_net.writer_transforms(np.zeros((2, 7), np.float32), cfg))
    np.testing.assert_allclose(np.asarray(still), images, atol=1e-6)
    draws = np.zeros((2, 7), np.float32)
    draws[:, 4] = 1.0  # the largest shift to the right... of where each pixel is read from
    moved = np.asarray(num_net.affine_warp(images, num_net.writer_transforms(draws, cfg)))
    np.testing.assert_allclose(moved[:, 10:18, 10:13], 1.0, atol=1e-6)  # so the bar moves 2 px left
    assert moved[:, :, 13:].max() < 1e-6


def test_rotation_and_slant_keep_the_ink_and_move_it():
    cfg = num_net.TrainConfig()
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 4:24, 13:15] = 1.0  # an upright 1
    draws = np.zeros((1, 7), np.float32)
    draws[0, 1] = 1.0  # the full slant
    slanted = np.asarray(num_net.affine_warp(images, num_net.writer_transforms(draws, cfg)))[0]
    assert abs(slanted.sum() - images.sum()) < 0.1 * images.sum()
    top, bottom = slanted[5].argmax(), slanted[22].argmax()
    assert abs(int(top) - int(bottom)) >= 4  # the stroke now leans


def test_stroke_widths_make_some_images_bolder_and_some_thinner():
    cfg = num_net.TrainConfig()
    images = np.zeros((3, 28, 28), np.float32)
    images[:, 8:20, 10:14] = 1.0
    out = np.asarray(num_net.bolder_or_thinner(images, np.array([1.0, 0.0, -1.0], np.float32), cfg))
    assert out[0].sum() > images[0].sum() > out[2].sum() and out[1].sum() == images[1].sum()


def test_short_runs_take_smaller_batches_and_gentler_augmentation():
    one = num_net.for_length(num_net.TrainConfig(epochs=1))
    full = num_net.for_length(num_net.TrainConfig())
    assert one.batch_size < full.batch_size == 512
    assert one.rotation < full.rotation == num_net.TrainConfig().rotation
    assert num_net.for_length(num_net.TrainConfig(epochs=1, batch_size=200)).batch_size == 200


# ---------------------------------------------------------------- commands


def test_train_end_to_end_writes_model_metrics_and_plot(tiny_run):
    assert tiny_run["code"] == 0
    model = num_net.load_model(tiny_run["model"])
    assert model.count_params() == 118_282
    metrics = json.loads((tiny_run["out"] / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "train_accuracy", "val_accuracy", "epochs", "train_seconds",
                "samples_per_second", "seed", "data", "tensorflow", "keras"):
        assert key in metrics, key
    assert metrics["epochs"] == 3 and metrics["seed"] == 0
    assert metrics["config"]["batch_size"] == 64
    assert set(metrics["augmentation"]) == {"rotation", "shear", "scale", "max_shift", "bolder", "thinner"}
    assert metrics["test_accuracy"] >= 0.98  # the bars are easy: three epochs read them all (measured 100%)
    assert len(metrics["history"]["val_accuracy"]) == 3
    assert_picture(tiny_run["out"] / "predictions.png")
    assert not list(tiny_run["root"].rglob("*.tmp*")), "temporary files left behind"


def test_training_records_its_non_digits_and_their_rejection(tiny_run):
    metrics = json.loads((tiny_run["out"] / "metrics.json").read_text())
    assert metrics["non_digits"]["kinds"] == list(num_net.NOT_DIGIT_KINDS)
    made = metrics["non_digits"]["images"]
    assert made == round(num_net.NOT_DIGIT_SHARE * 540 / num_net.NOT_DIGIT_REPEATS)  # 8% of the 540 training images
    assert metrics["non_digits"]["repeats"] == num_net.NOT_DIGIT_REPEATS
    rates = metrics["not_a_digit"]
    assert rates["threshold"] == num_net.NOT_A_DIGIT and set(rates["rejected_per_kind"]) == set(num_net.NOT_DIGIT_KINDS)


def test_the_same_weights_again_leave_the_model_file_untouched(tiny_run, capsys):
    before = tiny_run["model"].read_bytes()
    code = num_net.main([*tiny_run["args"], "--model", str(tiny_run["model"]),
                         "--out-dir", str(tiny_run["root"] / "again_out"), "--no-show"])
    assert code == 0
    assert tiny_run["model"].read_bytes() == before
    assert f"{tiny_run['model']}: the new weights are identical to the file's; left it untouched" in capsys.readouterr().out


def test_evaluate_into_a_training_folder_keeps_its_history(tiny_run):
    out = tiny_run["root"] / "history_kept"
    code = num_net.main([*tiny_run["args"], "--model", str(tiny_run["root"] / "h.keras"), "--out-dir", str(out), "--no-show"])
    assert code == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    code = num_net.main(["evaluate", "--data", tiny_run["args"][2], "--model", str(tiny_run["root"] / "h.keras"),
                         "--out-dir", str(out), "--no-show"])
    assert code == 0 and (out / "history.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["history"] == history  # history.png still has its numbers


def test_counts_are_spelt_for_one_and_many():
    assert num_net.plural(1, "epoch") == "1 epoch" and num_net.plural(3, "example") == "3 examples"


def test_evaluate_scores_the_saved_model_like_train_did(tiny_run, capsys):
    out = tiny_run["root"] / "eval_out"
    data = tiny_run["args"][2]
    code = num_net.main(["evaluate", "--data", data, "--model", str(tiny_run["model"]), "--out-dir", str(out),
                         "--no-show"])
    assert code == 0
    trained = json.loads((tiny_run["out"] / "metrics.json").read_text())
    evaluated = json.loads((out / "metrics.json").read_text())
    assert evaluated["test_accuracy"] == pytest.approx(trained["test_accuracy"])
    printed = capsys.readouterr().out
    assert f"{trained['test_accuracy']:.2%}" in printed
    assert "precision" in printed and "confusion matrix" in printed
    assert evaluated["confusion_matrix"] == trained["confusion_matrix"]
    assert_picture(out / "predictions.png")


def test_report_figures_are_written_headless(tiny_run):
    for name in ("history.png", "confusion.png", "mistakes.png", "predictions.png"):
        assert_picture(tiny_run["out"] / name)


def test_confusion_matrix_agrees_with_accuracy(tiny_run):
    metrics = json.loads((tiny_run["out"] / "metrics.json").read_text())
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 100  # the synthetic test split
    assert np.trace(confusion) / confusion.sum() == pytest.approx(metrics["test_accuracy"])
    assert [c["support"] for c in metrics["per_class"]] == confusion.sum(axis=1).tolist()
    assert len(metrics["history"]["loss"]) == metrics["epochs"]


def test_most_confident_mistakes_are_mistakes_in_confidence_order():
    labels = np.array([0, 1, 2, 3])
    proba = np.full((4, 10), 0.01)
    proba[0, 0] = 0.9  # right
    proba[1, 7] = 0.6  # wrong, less sure
    proba[2, 5] = 0.95  # wrong, most sure
    proba[3, 3] = 0.5  # right
    picks = num_net.most_confident_mistakes(labels, proba, count=10)
    assert picks.tolist() == [2, 1]
    assert all(proba[i].argmax() != labels[i] for i in picks)


def test_per_class_scores_from_a_known_matrix():
    confusion = np.zeros((10, 10), int)
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 8, 2, 10
    scores = num_net.per_class_scores(confusion)
    assert scores[0] == {"digit": 0, "precision": 1.0, "recall": 0.8, "f1": pytest.approx(8 / 9), "support": 10}
    assert scores[1]["precision"] == pytest.approx(10 / 12) and scores[1]["recall"] == 1.0
    assert scores[5] == {"digit": 5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_same_seed_gives_same_result(tiny_run, tmp_path):
    out = tmp_path / "again"
    code = num_net.main([*tiny_run["args"], "--model", str(tmp_path / "m.keras"), "--out-dir", str(out), "--no-show"])
    assert code == 0
    first = json.loads((tiny_run["out"] / "metrics.json").read_text())
    second = json.loads((out / "metrics.json").read_text())
    assert second["test_accuracy"] == first["test_accuracy"]
    assert second["test_loss"] == first["test_loss"]


def test_no_command_means_train_and_help_shows_defaults(capsys):
    assert num_net.parse_args([]).command == "train"
    assert num_net.parse_args(["--epochs", "2"]).epochs == 2
    with pytest.raises(SystemExit) as exit_info:
        num_net.main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"(default: {num_net.TrainConfig().epochs})" in text and "handwritten.keras" in text


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--batch-size", "-1"], ["--validation-split", "1.5"]])
def test_out_of_range_flags_are_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        num_net.main(["train", *flags])
    assert exit_info.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_missing_data_is_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.npz"
    assert num_net.main(["train", "--data", str(missing), "--out-dir", str(tmp_path), "--no-show"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "Traceback" not in err[0]


def test_missing_model_is_one_line_error(tmp_path, npz_path, capsys):
    missing = tmp_path / "none.keras"
    code = num_net.main(["evaluate", "--data", str(npz_path), "--model", str(missing), "--out-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]


def test_failed_download_points_to_data_flag(monkeypatch):
    keras = num_net.import_keras()

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(num_net.UserError, match="--data"):
        num_net.load_dataset(None)


# ---------------------------------------------------------------- real MNIST


def test_real_mnist_is_recognised_as_canonical(real_dataset):
    assert real_dataset.canonical
    assert real_dataset.x_train.shape == (60000, 28, 28) and real_dataset.x_test.shape == (10000, 28, 28)


def test_real_mnist_short_run_reaches_96_percent(real_dataset, tmp_path):
    num_net.import_keras().utils.set_random_seed(0)
    model = num_net.build_model()
    cfg = num_net.TrainConfig(epochs=2, batch_size=128, seed=0)
    num_net.train(model, num_net.normalize(real_dataset.x_train), real_dataset.y_train, cfg, verbose=0)
    result = num_net.evaluate(model, num_net.normalize(real_dataset.x_test), real_dataset.y_test)
    assert result.accuracy >= 0.96


def test_committed_model_scores_its_readme_figure(real_dataset):
    readme = (ROOT / "README.md").read_text()
    figure = re.search(r"committed `handwritten.keras` scores \*\*(\d+\.\d+)%\*\*", readme)
    assert figure, "README must state the committed model's test accuracy"
    model = num_net.load_model(ROOT / "handwritten.keras")
    result = num_net.evaluate(model, num_net.normalize(real_dataset.x_test), real_dataset.y_test)
    assert f"{result.accuracy * 100:.2f}" == figure.group(1)


def test_a_zero_validation_split_holds_nothing_out_and_any_other_at_least_one():
    x, y = np.arange(10), np.arange(10)
    (fit_x, _), (val_x, _) = num_net.split_validation(x, y, 0.0)
    assert len(fit_x) == 10 and len(val_x) == 0
    assert len(num_net.split_validation(x, y, 0.01)[1][0]) == 1
    assert len(num_net.split_validation(x, y, 0.2)[1][0]) == 2


def test_confusion_matrix_counts_each_true_and_read_pair():
    confusion = num_net.confusion_matrix(np.array([3, 3, 5, 9]), np.array([3, 8, 5, 9]))
    assert confusion.shape == (10, 10) and confusion.sum() == 4
    assert confusion[3, 3] == 1 and confusion[3, 8] == 1 and confusion[5, 5] == 1 and confusion[9, 9] == 1


def test_an_interrupted_run_names_what_it_had_already_saved(tmp_path, monkeypatch):
    written = num_net.WRITTEN.set([])  # as main() starts each run
    try:
        assert num_net.saved_before_stopping() == "nothing was overwritten"
        num_net.save_json({"a": 1}, tmp_path / "metrics.json")
        assert num_net.saved_before_stopping() == (f"{tmp_path / 'metrics.json'} had been saved; "
                                                   "nothing else was overwritten")
    finally:
        num_net.WRITTEN.reset(written)


# A process that never imports num_net loads a model file the way every Keras user does.
PLAIN_LOAD = """
import sys
import keras, numpy as np
model = keras.models.load_model(sys.argv[1])  # safe_mode on, compile as the file says
assert "num_net" not in sys.modules
with np.load(sys.argv[2], allow_pickle=False) as data:
    x, y = data["x_test"], data["y_test"]
proba = model.predict(x.astype("float32") / 255, verbose=0)
print(float((proba.argmax(axis=1) == y).mean()))
"""


def plain_keras_accuracy(model: Path, data: Path) -> float:
    proc = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(model), str(data)], capture_output=True, text=True,
                          timeout=300, cwd=model.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(proc.stdout.strip().splitlines()[-1])


def test_the_committed_model_loads_in_plain_keras_and_scores_as_evaluate(real_dataset, tmp_path):
    data = real_data_path()
    if data.is_dir():  # an IDX folder: give the plain loader the Keras layout
        np.savez(tmp_path / "mnist.npz", x_test=real_dataset.x_test, y_test=real_dataset.y_test)
        data = tmp_path / "mnist.npz"
    accuracy = plain_keras_accuracy(ROOT / "handwritten.keras", data)
    model = num_net.load_model(ROOT / "handwritten.keras")
    assert accuracy == num_net.evaluate(model, num_net.normalize(real_dataset.x_test), real_dataset.y_test).accuracy
    assert accuracy >= 0.988


def test_a_model_train_saves_loads_in_plain_keras(tiny_run):
    accuracy = plain_keras_accuracy(tiny_run["model"], tiny_run["root"] / "tiny.npz")
    metrics = json.loads((tiny_run["out"] / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_the_worlds_styles_are_seeded_shared_equally_and_framed_as_mnist():
    count = 10 * len(num_net.WORLD_STYLES)
    images, labels = num_net.style_digits(count, seed=3)
    again, _ = num_net.style_digits(count, seed=3)
    assert np.array_equal(images, again) and not np.array_equal(images, num_net.style_digits(count, seed=4)[0])
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    expected = [label for label, _ in num_net.WORLD_STYLES.values()] * 10
    assert labels.tolist() == expected  # every style, in turn
    for image in images:  # MNIST's framing: ink within the middle 20x20 give or take, mass at the centre
        rows, cols = np.nonzero(image > 64)
        assert rows.max() - rows.min() <= 21 and cols.max() - cols.min() <= 21
        mass = image.astype(float) / image.sum()
        assert abs((mass.sum(axis=1) * np.arange(28)).sum() - 13.5) < 1.5
    for name, (_, draw) in num_net.WORLD_STYLES.items():
        assert draw.__doc__ and len(draw.__doc__.split()) >= 8, f"{name}: say which hands write it so"


def test_the_worlds_styles_are_drawn_whole_at_their_steepest_slant():
    rng = np.random.default_rng(0)
    for name, (_, strokes) in num_net.WORLD_STYLES.items():
        for _ in range(300):  # a digit cut off at the canvas's edge is framed as a different shape
            ink = num_net._pen_digit(rng, strokes(rng))
            assert not (ink[:, [0, -1]].any() or ink[[0, -1]].any()), f"{name}: drawn past the canvas"


def test_a_hooked_six_encloses_one_loop_never_two_as_an_eight_does():
    rng = np.random.default_rng(0)
    for _ in range(300):  # its hook curls over but stays open above the loop, or it is drawn as an 8
        ink = num_net._pen_digit(rng, num_net._hooked_six(rng)) > 0
        holes, _ = ndimage.label(ndimage.binary_fill_holes(ink) & ~ink)
        sizes = np.bincount(holes.ravel())[1:]
        assert (sizes > 30).sum() == 1  # smaller holes are pinholes where a wide pen's segments join


def test_training_mixes_in_the_worlds_styles_at_the_configured_share(tiny_run):
    metrics = json.loads((tiny_run["out"] / "metrics.json").read_text())
    styles = metrics["styles"]
    assert styles["share"] == num_net.TrainConfig().styles and styles["kinds"] == list(num_net.WORLD_STYLES)
    fit_images = 600 - round(600 * 0.1)  # synthetic_arrays' training part, less the validation split
    assert styles["images"] == round(styles["share"] * fit_images)
