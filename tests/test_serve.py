"""Tests for `serve`: the API with plain HTTP clients, the command line, and the page in a real
headless browser (Debian's chromium, driven by Playwright; required in CI)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import num_net
from conftest import MODEL, ROOT, interruptible


def digit_png(path: Path, strokes, size=(200, 240)) -> Path:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for points in strokes:
        draw.line(points, fill=20, width=14, joint="curve")
    img.save(path)
    return path


SEVEN = [[(40, 40), (160, 40), (90, 210)]]
ONE = [[(100, 30), (100, 210)]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("served") / "examples"
    httpd = num_net.make_server(num_net.load_reader(MODEL), "127.0.0.1", 0, save_dir, timeout=2.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"port": httpd.server_address[1], "save_dir": save_dir}
    httpd.shutdown()
    httpd.server_close()


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(payload) if kind.startswith("application/json") else payload.decode()


# ---------------------------------------------------------------- the API


def test_the_page_has_the_contracts_ids(server):
    status, page = request(server, "GET", "/")
    assert status == 200
    for needle in ('id="pad"', 'id="answer"', 'id="photo"', 'accept="image/*"', 'capture="environment"', "multiple",
                   "pointerdown", "touch-action:none"):
        assert needle in page, needle
    assert "http://" not in page and "https://" not in page  # no CDN: works offline


def test_predict_answers_like_predict_json_with_boxes_and_inputs(server, tmp_path):
    path = digit_png(tmp_path / "seven.png", SEVEN)
    status, body = request(server, "POST", "/api/predict", path.read_bytes())
    assert status == 200
    cli, _ = num_net.predict_files(num_net.load_reader(MODEL), [path])
    assert body["digit"] == cli[0]["digit"] == 7 and body["probabilities"] == cli[0]["probabilities"]
    (top, bottom, left, right), = body["boxes"]
    assert 30 <= top < 60 and 190 < bottom <= 225 and 25 <= left < 60 and 150 < right <= 175  # in the image's pixels
    assert len(body["inputs"]) == 1 and body["inputs"][0].startswith("data:image/png;base64,")


def test_a_number_on_a_big_photo_gets_boxes_in_the_photos_pixels(server, tmp_path):
    img = Image.new("L", (3000, 1600), 235)
    draw = ImageDraw.Draw(img)
    draw.line([(1000, 600), (1000, 1000)], fill=20, width=30)  # 1
    draw.line([(1200, 600), (1450, 600), (1280, 1000)], fill=20, width=30)  # 7
    img.save(tmp_path / "big.jpg", quality=90)
    status, body = request(server, "POST", "/api/predict", (tmp_path / "big.jpg").read_bytes())
    assert status == 200 and body["number"] == "17"
    assert abs(body["boxes"][0][0] - 585) < 30 and abs(body["boxes"][1][3] - 1465) < 40  # 3000 px wide, not 1000


@pytest.mark.parametrize("case, status, needle", [
    ("blank", 422, "no digit found"),
    ("not an image", 400, "not a readable image"),
    ("too many pixels", 400, "too large to open safely"),
])
def test_bad_uploads_get_one_json_line_and_a_4xx(server, case, status, needle, tmp_path):
    if case == "blank":
        Image.new("L", (200, 200), 255).save(tmp_path / "x.png")
        body = (tmp_path / "x.png").read_bytes()
    elif case == "not an image":
        body = b"%PDF-1.4 not an image at all"
    else:  # a tiny PNG that declares 10,000 x 10,000 pixels
        Image.new("1", (10_000, 10_000)).save(tmp_path / "x.png")
        body = (tmp_path / "x.png").read_bytes()
    got, answer = request(server, "POST", "/api/predict", body)
    assert got == status and needle in answer["error"] and "\n" not in answer["error"]


def test_an_upload_over_20_mb_is_refused_unread(server):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 25000000\r\n\r\n")  # then nothing
        reply = b""
        while chunk := sock.recv(4096):  # the answer comes without the server waiting for the body
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.0 413") or reply.startswith("HTTP/1.1 413")
    assert '"error"' in reply and "20 MB" in reply


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nowhere", 404), ("GET", "/../num_net.py", 404), ("GET", "/api/predict/../../etc/passwd", 404),
    ("PUT", "/", 405), ("DELETE", "/api/examples", 405), ("POST", "/api/other", 404),
])
def test_unknown_paths_and_methods(server, method, path, status):
    got, body = request(server, method, path, b"" if method != "GET" else None)
    assert got == status and isinstance(body, dict) and body["error"]


@pytest.mark.parametrize("query", ["", "?digit=", "?digit=x", "?digit=10", "?digit=%C2%B2", "?digit=3&digit=4"])
def test_an_example_needs_one_digit_0_to_9(server, query, tmp_path):
    path = digit_png(tmp_path / "seven.png", SEVEN)
    status, body = request(server, "POST", "/api/examples" + query, path.read_bytes())
    assert status == 400 and "digit" in body["error"]


def test_examples_are_saved_where_draw_saves_them_and_counted(server, tmp_path):
    path = digit_png(tmp_path / "seven.png", SEVEN)
    status, body = request(server, "POST", "/api/examples?digit=7", path.read_bytes())
    assert status == 200 and body["counts"]["7"] >= 1
    saved = server["save_dir"] / body["saved"]
    assert saved.parent == server["save_dir"] / "7" and saved.is_file()
    images, labels, _ = num_net.load_examples([server["save_dir"]])  # what train --extra reads
    assert 7 in labels.tolist()
    two = digit_png(tmp_path / "two.png", [SEVEN[0], [(175, 40), (175, 210)]], size=(260, 240))
    status, body = request(server, "POST", "/api/examples?digit=7", two.read_bytes())
    assert status == 422 and "holds 2 digits" in body["error"]


def test_a_slow_client_does_not_hold_up_the_others(server, tmp_path):
    path = digit_png(tmp_path / "one.png", ONE)
    with socket.create_connection(("127.0.0.1", server["port"])) as slow:
        slow.sendall(b"POST /api/predict HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc")  # and then nothing
        start = time.monotonic()
        status, body = request(server, "POST", "/api/predict", path.read_bytes())
        assert status == 200 and body["digit"] == 1 and time.monotonic() - start < 2
        slow.settimeout(10)
        assert slow.recv(4096) == b""  # dropped when its socket timed out (2 s here)


# ---------------------------------------------------------------- the command


def test_serve_prints_its_address_never_imports_tensorflow_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen(interruptible([sys.executable, str(ROOT / "num_net.py"), "serve", "--port", "0", "--model",
                                           str(MODEL), "--save-dir", str(tmp_path / "mine")]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    line = proc.stdout.readline()
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    status, _ = request({"port": port}, "GET", "/")
    assert status == 200
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "tensorflow" not in maps and "libtensorflow" not in maps
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mine").exists()  # nothing saved, nothing made


def test_serve_on_every_interface_warns_and_a_busy_port_is_one_line(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = num_net.main(["serve", "--port", str(port), "--model", str(MODEL), "--save-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and f"127.0.0.1:{port}" in err[0]
    proc = subprocess.Popen(interruptible([sys.executable, str(ROOT / "num_net.py"), "serve", "--host", "0.0.0.0",
                                           "--port", "0", "--model", str(MODEL), "--save-dir", str(tmp_path)]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("NumNet at http://")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert "anyone on this network" in err


# ---------------------------------------------------------------- the page, in a real browser


@pytest.fixture(scope="module")
def browser():
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


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server['port']}/")
    yield page
    context.close()


def draw(page, strokes) -> None:
    """Pointer strokes on #pad, in the 280x280 canvas's own coordinates."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=8)
        page.mouse.up()


def test_a_digit_drawn_on_the_pad_is_read(page):
    draw(page, [[(140, 40), (140, 240)]])
    page.wait_for_function("document.getElementById('answer').textContent === '1'", timeout=10_000)
    assert page.locator("#seen img").count() == 1
    draw(page, [[(60, 60), (230, 60), (120, 250)]])  # a 7 drawn over it reads as something else than 1
    page.click("#clear")
    page.wait_for_function("document.getElementById('answer').textContent === '?'", timeout=10_000)
    draw(page, [[(80, 60), (210, 60), (120, 250)]])
    page.wait_for_function("document.getElementById('answer').textContent === '7'", timeout=10_000)


def test_a_photo_uploaded_through_photo_shows_boxes_and_the_number(page, tmp_path):
    img = Image.new("RGB", (900, 500), (228, 224, 210))
    draw_ = ImageDraw.Draw(img)
    draw_.line([(250, 120), (250, 380)], fill=(30, 30, 40), width=18)
    draw_.line([(380, 120), (560, 120), (430, 380)], fill=(30, 30, 40), width=18)
    img.save(tmp_path / "page.jpg", quality=90)
    page.set_input_files("#photo", str(tmp_path / "page.jpg"))
    result = page.locator(".result")
    result.wait_for(timeout=15_000)
    assert result.get_attribute("data-number") == "17"
    assert page.locator(".card canvas").count() == 1 and page.locator(".card .inputs img").count() == 2


def test_a_drawing_is_saved_as_an_example_of_the_chosen_digit(page, server):
    before = len(list((server["save_dir"] / "4").glob("*.png"))) if (server["save_dir"] / "4").is_dir() else 0
    draw(page, [[(160, 40), (60, 180), (230, 180)], [(180, 110), (180, 260)]])
    page.wait_for_function("document.getElementById('answer').dataset.ready === '1'", timeout=10_000)
    page.select_option("#digit", "4")
    page.click("#save")
    page.wait_for_function("document.getElementById('counts').textContent.startsWith('saved 4/')", timeout=10_000)
    assert len(list((server["save_dir"] / "4").glob("*.png"))) == before + 1


def test_a_bug_while_reading_is_a_json_500_and_one_line(server, monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise ValueError("deliberately broken")

    monkeypatch.setattr(num_net, "read_page", broken)
    capsys.readouterr()
    status, body = request(server, "POST", "/api/predict", digit_png(tmp_path / "one.png", ONE).read_bytes())
    assert status == 500 and "a bug" in body["error"]
    err = capsys.readouterr().err.strip().splitlines()
    # the shared server may also be finishing an answer to a browser an earlier test closed: its one
    # line ("a connection ... ended early") is not this request's
    err = [line for line in err if "ended early" not in line]
    assert err == ["num_net: warning: a request to /api/predict failed: ValueError: deliberately broken"]
