"""Teaching NumNet your handwriting: labelled folders, draw's digit keys, train --extra and
evaluate --images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent
from PIL import Image, ImageDraw

import num_net
from helpers.support import MODEL, assert_one_line_error, stroke, synthetic_arrays


def written(digit: str, size=(120, 160)) -> Image.Image:
    """A page with a simple 0, 1 or 7 drawn on it (dark ink on white)."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    if digit == "0":
        draw.ellipse([30, 25, 90, 135], outline=0, width=10)
    elif digit == "1":
        draw.line([(65, 20), (60, 140)], fill=0, width=10)
    else:  # 7
        draw.line([(30, 30), (95, 30)], fill=0, width=10)
        draw.line([(95, 30), (50, 140)], fill=0, width=10)
    return img


@pytest.fixture
def subfolders(tmp_path):
    root = tmp_path / "by_digit"
    for digit in "017":
        (root / digit).mkdir(parents=True)
        for n in range(3):
            written(digit).save(root / digit / f"{n}.png")
    return root


@pytest.fixture
def flat(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for digit in "017":
        written(digit).save(root / f"{digit}_a.png")
    pair = Image.new("L", (260, 160), 255)
    pair.paste(written("1"), (0, 0))
    pair.paste(written("0"), (130, 0))
    pair.save(root / "10_pair.png")  # a whole number: one example per digit
    return root


def test_both_folder_layouts_load(subfolders, flat):
    examples = num_net.load_examples([subfolders])
    images, labels = examples.images, examples.labels
    assert images.shape == (9, 28, 28) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 7, 7, 7]
    examples = num_net.load_examples([flat])
    labels, summary = examples.labels, examples.describe()
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 7]
    assert summary["examples"] == 5 and summary["per_digit"][1] == 2 and summary["skipped"] == 0


def test_blank_images_and_wrong_digit_counts_are_skipped_by_name(flat, capsys):
    Image.new("L", (100, 100), 255).save(flat / "3_blank.png")
    pair = Image.open(flat / "10_pair.png")
    pair.save(flat / "4_two_digits.png")
    examples = num_net.load_examples([flat])
    labels, summary = examples.labels, examples.describe()
    warnings = capsys.readouterr().err.strip().splitlines()
    assert summary["skipped"] == 2 and len(labels) == 5
    assert any("3_blank.png" in w and "skipped" in w for w in warnings)
    assert any("4_two_digits.png" in w and "skipped" in w for w in warnings)


@pytest.mark.parametrize("problem, needle", [
    ("empty", "no labelled images"),
    ("subfolder", "named 0 to 9"),
    ("unreadable", "not a readable image"),
    ("unlabelled", "not a labelled image"),
    ("missing", "no such file or folder"),
])
def test_bad_labelled_folders_give_one_line(problem, needle, subfolders, tmp_path, capsys):
    folder = subfolders
    if problem == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif problem == "subfolder":
        (subfolders / "seven").mkdir()
    elif problem == "unreadable":
        (subfolders / "1" / "broken.png").write_bytes(b"\x89PNG not really")
    elif problem == "unlabelled":
        folder = tmp_path / "unlabelled"
        folder.mkdir()
        written("1").save(folder / "one.png")
    else:
        folder = tmp_path / "nowhere"
    saved = tmp_path / "m.keras"
    np.savez(tmp_path / "tiny.npz", **synthetic_arrays(n_train=100, n_test=20))
    code = num_net.main(["train", "--extra", str(folder), "--data", str(tmp_path / "tiny.npz"),
                         "--model", str(saved), "--out-dir", str(tmp_path / "out"), "--no-show"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert_one_line_error(code, err, needle)
    assert not saved.exists()


def test_digit_keys_save_examples_atomically(pad, tmp_path):
    stroke(pad, [(140, 40 + 10 * i) for i in range(21)])
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, "1"))
    saved = list((tmp_path / "mine" / "1").glob("*.png"))
    assert len(saved) == 1 and pad.saved[1] == 1 and "1:1" in pad.saved_text.get_text()
    assert pad.ink.max() == 0  # cleared for the next one
    assert not [p for p in (tmp_path / "mine").rglob("*") if p.name.startswith(".")]  # no temporary left
    assert num_net.load_examples([tmp_path / "mine"]).labels.tolist() == [1]
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, "2"))
    assert not (tmp_path / "mine" / "2").exists()  # an empty canvas saves nothing


def test_train_extra_changes_the_answers_on_your_examples(tmp_path):
    np.savez(tmp_path / "tiny.npz", **synthetic_arrays(n_train=1000))
    mine = tmp_path / "mine" / "7"
    mine.mkdir(parents=True)
    for n in range(6):
        written("0", size=(120 + 10 * n, 160)).save(mine / f"{n}.png")  # this writer's 7 looks like a ring
    files = sorted(mine.iterdir())
    answers = {}
    for name, extra in (("without", []), ("with", ["--extra", str(tmp_path / "mine")])):
        trained = tmp_path / f"{name}.keras"
        code = num_net.main(["train", "--data", str(tmp_path / "tiny.npz"), "--epochs", "3", "--model", str(trained),
                             "--out-dir", str(tmp_path / name), "--no-show", *extra])
        assert code == 0
        results, _ = num_net.predict_files(num_net.load_reader(trained), files)
        answers[name] = [r.get("digit") for r in results]
    assert answers["with"].count(7) >= 5 and answers["without"].count(7) <= 1
    metrics = json.loads((tmp_path / "with" / "metrics.json").read_text())
    assert metrics["extra"]["examples"] == 6 and metrics["extra"]["per_digit"][7] == 6
    assert metrics["extra"]["repeats_per_epoch"] >= 1 and "test_accuracy" in metrics


def test_evaluate_images_refuses_a_broken_image_in_one_line(flat, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NUMNET_DATA", raising=False)
    (flat / "5_broken.png").write_bytes(b"\x89PNG not really")
    code = num_net.main(["evaluate", "--images", str(flat), "--model", str(MODEL), "--out-dir", str(tmp_path), "--no-show"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert_one_line_error(code, err, "5_broken.png", "not a readable image")


def test_evaluate_images_agrees_with_predict_and_downloads_nothing(flat, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NUMNET_DATA", raising=False)
    out = tmp_path / "out"
    assert num_net.main(["evaluate", "--images", str(flat), "--model", str(MODEL), "--out-dir", str(out), "--no-show"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_accuracy" not in metrics  # only the folder was scored
    score = metrics["folders"][str(flat)]
    results, _ = num_net.predict_files(num_net.load_reader(MODEL), [p for p, _ in num_net.labelled_files(flat)])
    right = sum(str(r.get("number", r.get("digit"))) == Path(r["file"]).name.split("_")[0] for r in results)
    assert score["right"] == right and score["images"] == 4
    assert set(score["per_label"]) == {"0", "1", "7", "10"}
    assert f"{right}/4" in printed and "per label" in printed


def test_evaluate_images_lists_only_the_files_it_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NUMNET_DATA", raising=False)
    folder = tmp_path / "mine"
    folder.mkdir()
    written("1").save(folder / "1_a.png")
    Image.new("L", (120, 160), 255).save(folder / "7_blank.png")  # not right, but nothing misread to draw
    out = tmp_path / "out"
    assert num_net.main(["evaluate", "--images", str(folder), "--model", str(MODEL), "--out-dir", str(out), "--no-show"]) == 0
    saved = capsys.readouterr().out.strip().splitlines()[-1]
    assert saved.startswith("saved ")
    named = saved.removeprefix("saved ").split(", ")
    assert named == [str(out / "metrics.json")] and all(Path(name).is_file() for name in named)


def test_a_drawing_of_two_digits_is_not_saved_as_one(pad, tmp_path):
    stroke(pad, [(60, 60 + 10 * i) for i in range(17)])
    stroke(pad, [(200, 60 + 10 * i) for i in range(17)])
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, "7"))
    assert not (tmp_path / "mine" / "7").exists()
    assert "holds 2 digits; draw one" in pad.out.getvalue().splitlines()[-1]
    assert "holds 2 digits" in pad.saved_text.get_text()
    assert pad.ink.max() > 0  # the drawing stays, to be cleared or mended

