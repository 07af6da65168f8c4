"""Hostile and awkward input: model files made to hurt, killed runs, odd names, stray files. Each
gives one clear line (or a warning and a normal run), a bounded run, and loses nothing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import num_net
from helpers.support import MODEL, ROOT, assert_one_line_error, run_main, synthetic_arrays


def digit_image(path: Path, digit: str = "1") -> Path:
    img = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(img).line([(60, 20), (60, 140)], fill=0, width=10) if digit == "1" else None
    img.save(path)
    return path


def model_with(path: Path, **members: bytes) -> Path:
    """The committed model with some of its zip members replaced."""
    with zipfile.ZipFile(MODEL) as original, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in original.infolist():
            out.writestr(item.filename, members.pop(item.filename, original.read(item.filename)))
        for name, data in members.items():
            out.writestr(name, data)
    return path


def huge_kernel_weights() -> bytes:
    """A model.weights.h5 whose first kernel declares 1,000,000 x 1,000,000 floats (stored sparse)."""
    import h5py

    buffer = io.BytesIO()
    with zipfile.ZipFile(MODEL) as original, h5py.File(io.BytesIO(original.read("model.weights.h5")), "r") as src, \
            h5py.File(buffer, "w") as h5:
        src.copy(src["layers"], h5, "layers")
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars"].create_dataset("0", shape=(1_000_000, 1_000_000), dtype="f4", chunks=(1000, 1000))
    return buffer.getvalue()


@pytest.mark.parametrize("case, needle", [
    ("deep config", "nested too deep"),
    ("config is a string", "not a loadable Keras model"),
    ("huge kernel", "do not fit NumNet's layers"),
    ("config bomb", "would inflate to"),
])
def test_hostile_model_files_give_one_line_in_bounded_time_and_memory(case, needle, tmp_path):
    path = tmp_path / "sent.keras"
    if case == "deep config":
        model_with(path, **{"config.json": b"[" * 100_000 + b"]" * 100_000})
    elif case == "config is a string":
        model_with(path, **{"config.json": json.dumps({"class_name": "Sequential", "config": "layers"}).encode()})
    elif case == "huge kernel":
        model_with(path, **{"model.weights.h5": huge_kernel_weights()})
    else:
        model_with(path, **{"config.json": b" " * 400_000_000})
    image = digit_image(tmp_path / "1_a.png")
    # VmHWM: this process's own peak (ru_maxrss would carry over the forking test process's)
    probe = ("import re, sys, num_net; code = num_net.main(sys.argv[1:]); status = open('/proc/self/status').read(); "
             "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr); sys.exit(code)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", probe, "predict", str(image), "--model", str(path),
                           "--out-dir", str(tmp_path / "out"), "--no-show"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    seconds = time.monotonic() - start
    *err, peak_kb = proc.stderr.strip().splitlines()
    assert_one_line_error(proc.returncode, err, str(path), needle)
    assert seconds < 10 and int(peak_kb) < 500 * 1024, (seconds, peak_kb)


def test_sigterm_ends_predict_of_a_big_folder_with_its_workers(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    first = digit_image(folder / "0000.png")
    for n in range(1, 3000):
        os.link(first, folder / f"{n:04d}.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "predict.png").write_bytes(b"the previous picture")
    proc = subprocess.Popen([sys.executable, str(ROOT / "num_net.py"), "predict", str(folder), "--model", str(MODEL),
                             "--out-dir", str(out), "--no-show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, start_new_session=True)
    assert proc.stdout.readline()  # files are being read, by the workers
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _, err = proc.communicate(timeout=10)  # returns only when every holder of its stdout is gone
    assert time.monotonic() - start < 2
    assert proc.returncode == 128 + signal.SIGTERM
    assert "terminated" in err and "Traceback" not in err
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert (out / "predict.png").read_bytes() == b"the previous picture"
    assert sorted(p.name for p in out.iterdir()) == ["predict.png"]


def test_a_label_that_python_calls_a_digit_but_is_not_ascii(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    digit_image(folder / "1_a.png")
    digit_image(folder / "\u00b2_a.png")
    np.savez(tmp_path / "tiny.npz", **synthetic_arrays(n_train=100, n_test=20))
    code, err = run_main(["train", "--extra", str(folder), "--data", str(tmp_path / "tiny.npz"), "--epochs", "1",
                          "--model", str(tmp_path / "m.keras"), "--out-dir", str(tmp_path / "out"), "--no-show"], capsys)
    assert_one_line_error(code, err, "\u00b2_a.png", "not a labelled image")


def test_two_folders_of_one_name_get_a_figure_each(tmp_path, capsys):
    folders = []
    for who in ("alice", "bob"):
        folder = tmp_path / who / "digits"
        folder.mkdir(parents=True)
        blank = Image.new("L", (120, 160), 255)
        ImageDraw.Draw(blank).ellipse((30, 30, 90, 130), outline=0, width=10)  # a 0, labelled 7: misread
        blank.save(folder / "7_a.png")
        folders.append(str(folder))
    code = num_net.main(["evaluate", "--images", *folders, "--model", str(MODEL), "--out-dir", str(tmp_path / "out"),
                         "--no-show"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    figures = [metrics["folders"][f]["mistakes_figure"] for f in folders]
    assert figures == ["mistakes_digits.png", "mistakes_digits-2.png"]
    assert all((tmp_path / "out" / name).is_file() for name in figures)


def test_a_file_name_with_a_newline_stays_on_one_line(tmp_path, capsys):
    bad = tmp_path / "bad\nname.png"
    bad.write_bytes(b"not an image")
    code, err = run_main(["predict", str(bad), "--model", str(MODEL), "--out-dir", str(tmp_path), "--no-show"], capsys)
    assert_one_line_error(code, err, "bad\\nname.png")


def test_draw_checks_its_save_dir_before_any_window(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99")  # the check must come first, display or not
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    for save_dir in (not_a_folder, not_a_folder / "deeper"):
        code, err = run_main(["draw", "--model", str(MODEL), "--save-dir", str(save_dir)], capsys)
        assert_one_line_error(code, err, str(save_dir), "is a file, not a folder")


def test_stray_files_in_a_labelled_folder_are_skipped_with_one_warning(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "1").mkdir(parents=True)
    digit_image(folder / "1" / "a.png")
    (folder / "Thumbs.db").write_bytes(b"\x00\x01")
    (folder / "notes.txt").write_text("my digits")
    (folder / "1" / "desktop.ini").write_text("[x]")
    (folder / ".DS_Store").write_bytes(b"\x00")
    files = num_net.labelled_files(folder)
    assert [(p.name, label) for p, label in files] == [("a.png", "1")]
    assert capsys.readouterr().err.strip().splitlines() == [
        f"num_net: warning: {folder}: skipped 3 files that are not images: Thumbs.db, desktop.ini, notes.txt"]


def test_only_a_file_that_claims_to_be_an_image_and_is_not_stops_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NUMNET_DATA", raising=False)  # the folder alone, not MNIST too
    folder = tmp_path / "flat"
    folder.mkdir()
    digit_image(folder / "1_a.png")
    (folder / "Thumbs.db").write_bytes(b"\x00\x01")
    args = ["evaluate", "--images", str(folder), "--model", str(MODEL), "--out-dir", str(tmp_path / "out"), "--no-show"]
    code, err = run_main(args, capsys)
    assert code == 0 and err == [f"num_net: warning: {folder}: skipped 1 file that is not an image: Thumbs.db"]
    (folder / "2_fake.png").write_text("claims to be an image")
    code, err = run_main(args, capsys)
    assert_one_line_error(code, err[1:], "2_fake.png", "not a readable image")


def test_evaluate_refuses_a_deeply_nested_config_in_one_line(tmp_path, capsys):
    path = model_with(tmp_path / "deep.keras", **{"config.json": b"[" * 100_000 + b"]" * 100_000})
    (tmp_path / "mine").mkdir()
    digit_image(tmp_path / "mine" / "1_a.png")
    code, err = run_main(["evaluate", "--images", str(tmp_path / "mine"), "--model", str(path),
                          "--out-dir", str(tmp_path / "out"), "--no-show"], capsys)
    assert_one_line_error(code, err, str(path), "nested too deep")
