"""Tests for `draw`, driven through Matplotlib's own events on the non-interactive Agg backend."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent, MouseEvent

import num_net
from conftest import ROOT, stroke


def test_a_drawn_one_is_read_as_one(pad):
    stroke(pad, [(140, 40 + 10 * i) for i in range(21)])
    line = pad.out.getvalue().strip()
    assert line.startswith("digit=1 confidence=")
    assert float(line.split("confidence=")[1]) >= num_net.SURE_JOIN  # a clear stroke reads as surely as a clear digit


def test_a_drawn_zero_is_read_as_zero(pad):
    angles = np.linspace(0, 2 * np.pi, 60)
    stroke(pad, [(140 + 65 * np.sin(a), 140 - 95 * np.cos(a)) for a in angles])
    assert pad.out.getvalue().strip().splitlines()[-1].startswith("digit=0 ")
    assert pad.answer.get_text() == "0"
    assert max(bar.get_height() for bar in pad.bars) == pytest.approx(pad.bars[0].get_height())


def test_clearing_resets_canvas_and_bars(pad):
    stroke(pad, [(140, 40 + 10 * i) for i in range(21)])
    assert pad.ink.max() > 0 and max(bar.get_height() for bar in pad.bars) > 0
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, "c"))
    assert pad.ink.max() == 0
    assert all(bar.get_height() == 0 for bar in pad.bars)
    assert pad.answer.get_text() == "?"


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
