"""Tests for `draw`, driven through Matplotlib's own events on the non-interactive Agg backend."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent, MouseEvent

import num_net
from helpers.support import ROOT, stroke


def test_a_drawn_one_is_read_as_one(pad):
    stroke(pad, [(140, 40 + 10 * i) for i in range(21)])
    line = pad.out.getvalue().strip()
    assert line.startswith("digit=1 confidence=")
    assert float(line.split("confidence=")[1]) >= num_net.CHOICE.sure_join  # a clear stroke reads as surely as a clear digit


def test_a_drawn_zero_is_read_as_zero(pad):
    angles = np.linspace(0, 2 * np.pi, 60)
    stroke(pad, [(140 + 65 * np.sin(a), 140 - 95 * np.cos(a)) for a in angles])
    assert pad.out.getvalue().strip().splitlines()[-1].startswith("digit=0 ")
    assert pad.answer_text.get_text() == "0"
    assert max(bar.get_height() for bar in pad.bars) == pytest.approx(pad.bars[0].get_height())


def test_clearing_resets_canvas_and_bars(pad):
    stroke(pad, [(140, 40 + 10 * i) for i in range(21)])
    assert pad.ink.max() > 0 and max(bar.get_height() for bar in pad.bars) > 0
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, "c"))
    assert pad.ink.max() == 0
    assert all(bar.get_height() == 0 for bar in pad.bars)
    assert pad.answer_text.get_text() == "?"


def test_strokes_outside_the_canvas_draw_nothing(pad):
    sx, sy = pad.ax_bars.transData.transform((5, 0.5))
    pad.fig.canvas.callbacks.process("button_press_event",
                                     MouseEvent("button_press_event", pad.fig.canvas, sx, sy, button=1))
    assert pad.ink.max() == 0 and pad.out.getvalue() == ""


def test_draw_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(num_net.sys, "platform", "linux")
    assert num_net.main(["draw", "--model", str(ROOT / "handwritten.keras")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("num_net: error: draw needs a display")


def test_an_unsure_reading_is_shown_as_a_guess_with_its_probability(pad, monkeypatch):
    proba = np.full(10, 0.728 / 9)
    proba[4] = 0.272  # a letter A, say: read as a 4 at 27%
    reading = num_net.Reading("drawing", [[num_net.Digit((0, 1, 0, 1), np.zeros((28, 28), np.uint8), 2.0)]], (280, 280),
                              proba=proba[None])
    monkeypatch.setattr(num_net, "read_array", lambda model, gray, name: (reading, {}))
    stroke(pad, [(140, 40), (140, 60)])
    assert pad.answer_text.get_text() == "not sure:\n4? 27%" and pad.sure.get_text() == ""
    assert pad.out.getvalue().strip() == "digit=4 confidence=0.272"


def test_a_sure_reading_says_how_sure_and_two_digits_say_which_the_bars_are_for(pad):
    stroke(pad, [(60, 60 + 8 * i) for i in range(21)])
    assert pad.answer_text.get_text() == "1" and pad.sure.get_text().endswith("% sure")
    stroke(pad, [(120, 60), (240, 60), (160, 230)])
    assert pad.answer_text.get_text() == "17" and pad.bars_for.get_text() == "bars: digit 2 of 2 (7)"


def test_the_predict_window_ends_at_once_on_sigterm_and_ctrl_c(tmp_path):
    """A real window under Xvfb: the GUI loop must not hold the signal until the mouse moves."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from PIL import Image, ImageDraw

    from helpers.support import interruptible

    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("CI must run the window test: install xvfb (.ci/run does)")
        pytest.skip("the window test needs Xvfb (apt-get install xvfb)")
    img = Image.new("L", (200, 240), 255)
    ImageDraw.Draw(img).line([(40, 40), (160, 40), (90, 210)], fill=20, width=14)
    img.save(tmp_path / "seven.png")
    display = f":{90 + (int(time.time()) % 50)}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            proc = subprocess.Popen(interruptible([sys.executable, str(ROOT / "num_net.py"), "predict", "seven.png",
                                                   "--model", str(ROOT / "handwritten.keras")]),
                                    cwd=tmp_path, env={**__import__("os").environ, "DISPLAY": display, "MPLBACKEND": "TkAgg"},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert proc.stdout.readline().startswith("seven.png: 7 ")
            assert proc.stdout.readline().startswith("saved ")
            time.sleep(2.0)  # the window is up, its loop waiting for events
            assert proc.poll() is None
            sent = time.monotonic()
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == code and time.monotonic() - sent < 5, (proc.returncode, err)
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        server.terminate()
        server.wait(timeout=10)
