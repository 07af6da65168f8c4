"""Tests for `serve`: the API with plain HTTP clients, the command line, and the page in a real
headless browser (Debian's chromium, driven by Playwright; required in CI)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
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
from helpers.support import MODEL, ROOT, interruptible


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
    ("not an image", 415, "not a readable image"),
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
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 25000000\r\n\r\n")  # then nothing
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
    examples = num_net.load_examples([server["save_dir"]])  # what train --extra reads
    images, labels = examples.images, examples.labels
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


def test_the_save_list_defaults_to_the_digit_read_and_saves_that(page, server):
    before = len(list((server["save_dir"] / "7").glob("*.png"))) if (server["save_dir"] / "7").is_dir() else 0
    assert page.input_value("#digit") == ""  # nothing read yet: no digit chosen for the user
    draw(page, [[(80, 60), (210, 60), (120, 250)]])
    page.wait_for_function("document.getElementById('answer').textContent === '7'", timeout=10_000)
    assert page.input_value("#digit") == "7" and page.text_content("#sure").endswith("% sure")
    page.click("#save")
    page.wait_for_function("document.getElementById('counts').textContent.startsWith('saved 7/')", timeout=10_000)
    assert len(list((server["save_dir"] / "7").glob("*.png"))) == before + 1
    assert page.input_value("#digit") == ""  # the canvas is cleared, and its choice with it


def test_a_cleared_pad_shows_nothing_read_even_when_an_answer_is_still_on_its_way(page, monkeypatch):
    read_page, answers = num_net.read_page, queue.Queue()

    def slow(*args, **kwargs):  # a slow phone: each answer comes back when the test lets it
        answers.get(timeout=10)
        return read_page(*args, **kwargs)

    draw(page, [[(80, 60), (210, 60), (120, 250)]])
    page.wait_for_function("document.getElementById('answer').textContent === '7'", timeout=10_000)
    monkeypatch.setattr(num_net, "read_page", slow)
    draw(page, [[(110, 150), (190, 150)]])  # a bar across it: read once as it starts, once more after
    answers.put("the first")
    page.wait_for_function("pending && !again", timeout=10_000)  # the last read of the drawing is on its way
    page.click("#clear")
    assert page.text_content("#answer") == "?" and page.input_value("#digit") == ""
    answers.put("the last")  # it answers for a drawing that is gone
    page.wait_for_function("!pending", timeout=10_000)
    assert page.text_content("#answer") == "?" and page.input_value("#digit") == ""


def test_a_photos_example_is_saved_under_its_chosen_digit_and_said_in_its_card(page, server, tmp_path):
    img = Image.new("RGB", (300, 360), (235, 232, 225))
    ImageDraw.Draw(img).line([(60, 60), (240, 60), (130, 320)], fill=(25, 25, 30), width=22)
    img.save(tmp_path / "seven.jpg", quality=90)
    page.set_input_files("#photo", str(tmp_path / "seven.jpg"))
    card = page.locator(".card")
    card.locator(".result").wait_for(timeout=15_000)
    assert "%" in card.locator(".result").text_content()
    assert card.locator("select").input_value() == "7"
    card.locator("select").select_option("1")  # the user knows better: it was a 1
    card.locator("button").click()
    card.locator(".saved").filter(has_text="saved 1/").wait_for(timeout=10_000)
    assert page.text_content("#counts").startswith("examples per digit")  # not at the top: in the card


@pytest.mark.parametrize("answer, shown", [
    ({"digit": 4, "confidence": 0.272}, "not sure: 4? 27%"),
    ({"number": "17", "confidence": 0.41, "digits": []}, "not sure: 17? 41%"),
    ({"digit": 7, "confidence": 0.93}, "7"),
])
def test_the_page_shows_an_unsure_answer_as_a_guess(page, answer, shown):
    assert page.evaluate(f"answerText({json.dumps(answer)})") == shown


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


# ---------------------------------------------------------------- who may ask: the same-origin rule


def raw(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict]:
    """Send raw bytes as a request; the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return int(head.split()[1]), json.loads(body)


def saved_files(save_dir: Path) -> list[Path]:
    return sorted(save_dir.rglob("*.png")) if save_dir.exists() else []


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example", "Content-Type": "text/plain"},  # what a no-cors fetch from any site sends
    {"Origin": "null"},  # a sandboxed frame or a file:// page
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},  # another server on this machine
])
def test_another_sites_page_cannot_save_or_read_through_the_api(server, headers, tmp_path):
    before = saved_files(server["save_dir"])
    seven = digit_png(tmp_path / "seven.png", SEVEN).read_bytes()
    for path in ("/api/examples?digit=3", "/api/predict"):
        status, body = request(server, "POST", path, seven, headers)
        assert status == 403 and "own page" in body["error"]
    assert saved_files(server["save_dir"]) == before


def test_the_pages_own_origin_and_clients_without_one_may_post(server, tmp_path):
    one = digit_png(tmp_path / "one.png", ONE).read_bytes()
    own = {"Origin": f"http://127.0.0.1:{server['port']}", "Sec-Fetch-Site": "same-origin"}
    assert request(server, "POST", "/api/predict", one, own)[0] == 200
    assert request(server, "POST", "/api/predict", one)[0] == 200  # curl, scripts
    localhost = {"Host": f"localhost:{server['port']}", "Origin": f"http://localhost:{server['port']}"}
    assert request(server, "POST", "/api/predict", one, localhost)[0] == 200


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/api/examples"), ("POST", "/api/examples?digit=3")])
def test_a_name_that_is_not_the_servers_is_refused_421(server, method, path, tmp_path):
    """DNS rebinding: an attacker's name, made to point at this machine, is not one of the server's names."""
    before = saved_files(server["save_dir"])
    body = digit_png(tmp_path / "seven.png", SEVEN).read_bytes() if method == "POST" else None
    status, answer = request(server, method, path, body, {"Host": f"rebind.evil.example:{server['port']}"})
    assert status == 421 and "rebind.evil.example" in answer["error"]
    assert saved_files(server["save_dir"]) == before


def test_the_servers_names_and_addresses_are_answered(server):
    assert num_net.make_server(None, "127.0.0.1", 0, Path("unused")).answers_to("127.0.0.1:8000")
    httpd = num_net.make_server(None, "0.0.0.0", 0, Path("unused"))
    try:  # on every interface: the LAN address a phone uses, IPv6 too, and this machine's name
        for host in ("192.168.1.20:8000", "[::1]:8000", "localhost", socket.gethostname(), socket.gethostname() + ".local"):
            assert httpd.answers_to(host), host
        assert not httpd.answers_to("192.168.1.20.evil.example") and not httpd.answers_to("localhost.evil.example")
    finally:
        httpd.server_close()


# ---------------------------------------------------------------- what may be decoded: in-process formats only


def fake_ghostscript(tmp_path: Path) -> tuple[dict, Path]:
    """An environment whose `gs` only leaves a mark that it ran: Pillow hands EPS, PS and PDF to it."""
    bin_dir, ran = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch '{ran}'\nsleep 60\n")
    (bin_dir / "gs").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, ran


POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n{ } loop\nshowpage\n%%EOF\n"


def test_postscript_under_an_image_name_runs_nothing_in_predict(tmp_path):
    env, ran = fake_ghostscript(tmp_path)
    for name in ("page.png", "page.eps", "page.jpg"):
        (tmp_path / name).write_bytes(POSTSCRIPT)
    proc = subprocess.run([sys.executable, str(ROOT / "num_net.py"), "predict", "page.png", "page.eps", "page.jpg",
                           "--model", str(MODEL), "--no-show"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 3 and all("not a readable image" in line for line in err), err
    assert not ran.exists()


def test_postscript_and_pdf_uploads_are_415_and_start_no_process(tmp_path):
    env, ran = fake_ghostscript(tmp_path)
    proc = subprocess.Popen([sys.executable, str(ROOT / "num_net.py"), "serve", "--port", "0", "--model", str(MODEL),
                             "--save-dir", str(tmp_path / "mine")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        for data in (POSTSCRIPT, b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"):
            for path in ("/api/predict", "/api/examples?digit=1"):
                status, body = request({"port": port}, "POST", path, data)
                assert status == 415 and "not a readable image" in body["error"]
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == [] and not ran.exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_fifo_or_a_device_is_not_a_regular_file_and_is_never_opened(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.png")  # opening it would wait for a writer forever
    code = num_net.main(["predict", str(tmp_path / "pipe.png"), "/dev/zero", "--model", str(MODEL), "--no-show",
                         "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 2 and all("not a regular file" in line for line in err), err


def test_a_108_megapixel_photo_is_read_at_reduced_size_without_warnings(tmp_path):
    img = Image.new("L", (12000, 9000), 230)
    ImageDraw.Draw(img).line([(5000, 2000), (5000, 7000)], fill=20, width=400)
    img.save(tmp_path / "huge.jpg", quality=80)
    del img
    proc = subprocess.run([sys.executable, str(ROOT / "num_net.py"), "predict", "huge.jpg", "--model", str(MODEL),
                           "--no-show"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("huge.jpg: 1 (")
    assert proc.stderr == ""  # no DecompressionBombWarning, no Pillow source paths


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def test_four_40_megapixel_uploads_at_once_stay_under_1_gb(tmp_path):
    img = Image.new("RGBA", (7700, 5150), (0, 0, 0, 0))  # 39.7 megapixels, transparent: the costliest kind
    ImageDraw.Draw(img).line([(3000, 1500), (3000, 3500)], fill=(20, 20, 20, 255), width=120)
    img.save(tmp_path / "big.png")
    del img
    data = (tmp_path / "big.png").read_bytes()
    proc = subprocess.Popen([sys.executable, str(ROOT / "num_net.py"), "serve", "--port", "0", "--model", str(MODEL),
                             "--save-dir", str(tmp_path / "mine")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        answers = []
        uploads = [threading.Thread(target=lambda: answers.append(request({"port": port}, "POST", "/api/predict", data)))
                   for _ in range(4)]
        for upload in uploads:
            upload.start()
        for upload in uploads:
            upload.join()
        assert [status for status, _ in answers] == [200] * 4 and all(body["digit"] == 1 for _, body in answers)
        assert peak_rss_mb(proc.pid) < 1024
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# ---------------------------------------------------------------- bounded work: deadlines, connections


@pytest.fixture
def strict_server(tmp_path):
    """A server of its own, whose whole-request deadline is 2 s."""
    httpd = num_net.make_server(num_net.load_reader(MODEL), "127.0.0.1", 0, tmp_path / "mine", timeout=2.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"port": httpd.server_address[1], "save_dir": tmp_path / "mine"}
    httpd.shutdown()
    httpd.server_close()


def dropped(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: dropped too
        return True


def test_clients_trickling_a_byte_a_second_are_dropped_at_the_deadline(strict_server, tmp_path):
    one = digit_png(tmp_path / "one.png", ONE).read_bytes()
    request_bytes = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    slow = [socket.create_connection(("127.0.0.1", strict_server["port"])) for _ in range(50)]
    start = time.monotonic()
    try:
        for second in range(4):  # a byte a second each: no single read ever waits long
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(request_bytes[second : second + 1])
            if second == 1:
                asked = time.monotonic()
                status, body = request(strict_server, "POST", "/api/predict", one)
                assert status == 200 and body["digit"] == 1 and time.monotonic() - asked < 2
            time.sleep(max(0.0, start + second + 1 - time.monotonic()))
        assert all(dropped(sock) for sock in slow)  # 4 s in: every one was dropped at its 2 s deadline
    finally:
        for sock in slow:
            sock.close()


def test_connections_past_the_cap_get_a_json_503(strict_server):
    idle = [socket.create_connection(("127.0.0.1", strict_server["port"])) for _ in range(num_net.SERVE_CONNECTIONS)]
    try:
        time.sleep(0.2)
        status, body = raw(strict_server["port"], b"GET / HTTP/1.0\r\n\r\n")
        assert status == 503 and "busy" in body["error"]
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)  # their threads see the close and end
    assert raw(strict_server["port"], b"GET /api/examples HTTP/1.0\r\n\r\n")[0] == 200


# ---------------------------------------------------------------- malformed requests: JSON, 4xx


@pytest.mark.parametrize("data, status", [
    (b"TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    (b"PROPFIND / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n", 431),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    ("POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ²\r\n\r\n".encode(), 400),
    (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 400),
    (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400),
])
def test_malformed_requests_get_json_errors_never_html_or_500(server, data, status, capsys):
    got, body = raw(server["port"], data)
    assert got == status and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_save_dir_whose_digit_folder_is_a_file_is_one_clear_json_error(strict_server, tmp_path):
    strict_server["save_dir"].mkdir()
    (strict_server["save_dir"] / "7").write_text("not a folder")
    status, body = request(strict_server, "POST", "/api/examples?digit=7", digit_png(tmp_path / "7.png", SEVEN).read_bytes())
    assert status == 507 and "could not write" in body["error"] and "a bug" not in body["error"]
