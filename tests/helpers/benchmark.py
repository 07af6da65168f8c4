"""Side-by-side benchmark: NumNet's default run against the tutorial recipe it replaces.

    python tests/helpers/benchmark.py --data ../shared/mnist/mnist.npz [--seeds 0 1 2] [--short 1 3]
    python tests/helpers/benchmark.py --draw-latency      # time one update of `draw` per mouse move
    python tests/helpers/benchmark.py --photo             # time preprocessing one 12-megapixel phone photo
    python tests/helpers/benchmark.py --serve             # 20 clients send serve 500 photos and drawings
    python tests/helpers/benchmark.py --folder DIR        # predict a folder: images/s, and where a page's time goes
    python tests/helpers/benchmark.py --kernels           # each fast kernel's share of its stage's time

Runs each command as its own process, one after another in this one session (the machine is
shared and noisy: compare the ratios, not the absolute seconds), and prints a Markdown table:
wall time from process start to exit, peak RSS, test accuracy, and NumNet's steady training
throughput. The tutorial is ../shared/bench/seed_recipe.py (Keras defaults: batch 32, Adam 1e-3).
Not collected by pytest: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run `cmd`; return wall seconds, peak RSS in MB, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark: {' '.join(cmd)} failed")
    return wall, usage.ru_maxrss / 1024, out


def tutorial(recipe: Path, data: str, arch: str, epochs: int) -> dict:
    wall, rss, out = timed([sys.executable, str(recipe), data, arch, str(epochs)])
    acc = float(re.search(r"test_acc=([\d.]+)", out).group(1))
    return {"name": f"tutorial `{arch} {epochs}`", "wall": wall, "rss": rss, "acc": acc, "sps": None}


def numnet(data: str, seed: int, epochs: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "num_net.py", "--data", data, "--no-show", "--seed", str(seed),
               "--model", f"{tmp}/m.keras", "--out-dir", tmp]
        wall, rss, _ = timed(cmd + (["--epochs", str(epochs)] if epochs else []))
        metrics = json.loads(Path(tmp, "metrics.json").read_text())
    name = f"NumNet seed {seed}" + (f" `--epochs {epochs}`" if epochs else "")
    return {"name": name, "wall": wall, "rss": rss, "acc": metrics["test_accuracy"],
            "sps": metrics["samples_per_second"], "default": epochs is None}


def draw_latency(moves: int = 30) -> str:
    """Time one mouse move in `draw` (paint, preprocess, predict, blit) on the Agg backend."""
    import io

    import numpy as np

    sys.path.insert(0, str(ROOT))
    import num_net

    plt = num_net.pyplot(show=False)
    pad = num_net.DrawPad(plt, num_net.load_model(ROOT / "handwritten.keras"), out=io.StringIO())
    pad.fig.canvas.draw()
    pad.last = (140.0, 40.0)
    times = []
    for i in range(moves):
        start = time.perf_counter()
        pad.paint(140.0, 45.0 + 6 * i)
        pad.refresh()
        times.append(time.perf_counter() - start)
    redraws = []
    for _ in range(10):
        start = time.perf_counter()
        pad.fig.canvas.draw()
        redraws.append(time.perf_counter() - start)
    return (f"draw: one mouse move takes {1000 * np.median(times):.1f} ms (median), {1000 * max(times):.1f} ms (max);"
            f" a full figure redraw would take {1000 * np.median(redraws):.1f} ms")


def photo_preprocessing(data: str, runs: int = 5) -> str:
    """Time reading a 4032x3024 JPEG photo of a page with a small 6-digit number on it: decode,
    downscale, find the digits, make their 28x28 images (no network)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    import num_net
    import pages

    with np.load(data, allow_pickle=False) as npz:
        x, y = npz["x_test"], npz["y_test"]
    rng = np.random.default_rng(1)
    digits, text = pages.number(x, y, rng, 6, 6)
    ink, _, _ = pages.place(pages.written_line(digits, 110, rng), 3024, 4032, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "photo.jpg")
        pages.photograph(ink, rng, dark_ink=True).convert("RGB").save(path, quality=90)
        num_net.find_digits(num_net.load_image(path))  # imports and first-call costs are not per photo
        times, found = [], ""
        for _ in range(runs):
            start = time.perf_counter()
            lines = num_net.find_digits(num_net.load_image(path))
            times.append(time.perf_counter() - start)
            found = f"{sum(len(line) for line in lines)} digits in {len(lines)} line(s)"
    return (f"12-megapixel photo (4032x3024 JPEG, number {text}, {found}): preprocessed in "
            f"{statistics.median(times):.3f} s (median of {runs}), {max(times):.3f} s at most")


# What find_digits does to every page, in order, as folder_speed names it.
STAGES = {"load_image": "decode", "smoothed": "noise", "ink_map": "paper estimate", "ink_mask": "hysteresis",
          "remove_page_rules": "page rules", "ink_blobs": "labelling", "read_line": "fitting digits"}
EVERY_PAGE = ("load_image", "smoothed", "ink_map", "ink_mask", "ink_blobs")  # the stages no page skips


def folder_speed(folder: Path, runs: int = 3) -> str:
    """Time `predict` on a folder with the model loaded (worker processes, as the command runs),
    then read it again on one core, stage by stage: where a page's time goes."""
    sys.path.insert(0, str(ROOT))
    import num_net

    files = sorted(p for p in folder.iterdir() if p.is_file())
    model = num_net.load_reader(ROOT / "handwritten.keras")
    num_net.predict_files(model, files[:1])  # imports and first-call costs are not per page
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        num_net.predict_files(model, files)
        rates.append(len(files) / (time.perf_counter() - start))
    spent = dict.fromkeys(STAGES, 0.0)

    def timed_stage(name, function):
        def stage(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - start
        return stage

    originals = {name: getattr(num_net, name) for name in STAGES}
    for name, function in originals.items():
        setattr(num_net, name, timed_stage(name, function))
    try:
        start = time.process_time()
        first = [num_net.read_digits(path) for path in files]
        first_look = time.process_time() - start
    finally:
        for name, function in originals.items():
            setattr(num_net, name, function)
    start = time.process_time()
    chosen = num_net.chosen_readings(model, first)
    network = time.process_time() - start
    start = time.process_time()
    num_net.surest_readings(model, first)
    second = time.process_time() - start - network
    unsure = sum(map(num_net.unsure, chosen))
    per_page = {STAGES[name]: 1000 * seconds / len(files) for name, seconds in spent.items()}
    per_page["the rest of the first look"] = 1000 * (first_look - sum(spent.values())) / len(files)
    every_page = 1000 * sum(spent[name] for name in EVERY_PAGE) / len(files)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{folder}: {len(files)} files, {min(rates):.0f}-{max(rates):.0f} images/s over {runs} runs (model loaded, "
            f"worker processes). One core, ms per page: "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_page.items())
            + f"; first look {1000 * first_look / len(files):.2f}; the network {1000 * network / len(files):.2f}; "
            f"second looks at the {unsure} unsure pages {1000 * second / len(files):.2f}. Decode to labelling, which "
            f"every page needs, is {every_page:.2f} ms: {cores} cores read at most {1000 * cores / every_page:.0f} images/s")


def kernel_gains(data: str, handwriting: Path) -> str:
    """Each fast kernel's share of its stage's time: the stage timed with the kernel, then with the
    library call in its place, over 8 pages of each generated case and samples of the real folders
    (for the opening, which only light ink calls, those of them that read as light ink once
    inverted: chalk on a dark board); best of 3."""
    import random

    import numpy as np
    from scipy import ndimage as ndi

    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    sys.path.insert(0, str(ROOT))
    import num_net
    import pages

    # Each fast kernel of num_net.py: the library call it stands for, the find_digits stages it
    # serves, and that call with the kernel's arguments.
    kernels = {
        "_running": ("scipy.ndimage.minimum_filter1d / maximum_filter1d", ("remove_page_rules",),
                     lambda a, size, axis, op, origin=0, fill=None: (
                         ndi.maximum_filter1d if op is np.maximum else ndi.minimum_filter1d)(
                         a, size, axis=axis, origin=origin,
                         **({} if fill is None else {"mode": "constant", "cval": fill}))),
        "_closing": ("scipy.ndimage.grey_closing", ("ink_map",),
                     lambda image, size: ndi.grey_closing(image, size=size)),
        "_square_running": ("scipy.ndimage.minimum_filter / maximum_filter", ("ink_map", "away_from_edges"),
                            lambda image, size, op, origin=0: (
                                ndi.maximum_filter if op is np.maximum else ndi.minimum_filter)(
                                image, size=size, origin=origin)),
        "_opening": ("scipy.ndimage.grey_opening", ("ink_map",),
                     lambda image, size: ndi.grey_opening(image, size=size)),
    }
    with np.load(data, allow_pickle=False) as npz:
        x, y = npz["x_test"], npz["y_test"]
    pick = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = [path for name in pages.CASES for path, _ in pages.write_case(name, x, y, Path(tmp) / name, 8)]
        for folder, count in (("usps", 40), ("registers", 40), ("photos", 20), ("ru_gridscan", 40)):
            found = sorted((handwriting / folder).iterdir())
            files += found[:count] if folder == "photos" else pick.sample(found, count)
        grays = [num_net.load_image(path) for path in files]
    inverted = [1 - gray for gray in grays]
    light = [gray for gray in inverted if num_net.light_ink(gray, max(3, round(0.4 * max(gray.shape))))]

    def stage_ms(stage: str, gray_pages: list) -> float:
        spent = [0.0]
        original = getattr(num_net, stage)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        setattr(num_net, stage, timed)
        try:
            best = float("inf")
            for _ in range(3):
                spent[0] = 0.0
                for gray in gray_pages:
                    num_net.find_digits(gray)
                best = min(best, spent[0])
        finally:
            setattr(num_net, stage, original)
        return 1000 * best / len(gray_pages)

    rows = [f"{len(grays)} pages ({len(light)} of them read as light ink once inverted); ms a page, kernel / library:",
            "| kernel | library call | stage | kernel | library | saved |", "| --- | --- | --- | ---: | ---: | ---: |"]
    for kernel, (call, stages, library) in kernels.items():
        for stage in stages:
            for gray_pages, which in ((light, ", light ink"),) if kernel == "_opening" else ((grays, ""),):
                mine = stage_ms(stage, gray_pages)
                original = getattr(num_net, kernel)
                setattr(num_net, kernel, library)
                try:
                    theirs = stage_ms(stage, gray_pages)
                finally:
                    setattr(num_net, kernel, original)
                rows.append(f"| `{kernel}` | `{call}` | `{stage}`{which} | {mine:.2f} | {theirs:.2f} | "
                            f"{(theirs - mine) / theirs:.0%} |")
    digits = (np.random.default_rng(0).random((1000, 28, 28)) * 255).astype(np.uint8)
    model = num_net.load_reader(ROOT / "handwritten.keras")
    start = time.perf_counter()
    for _ in range(3):
        num_net.read_proba(model, digits)
    with_taps = (time.perf_counter() - start) / 3
    start = time.perf_counter()
    for angle in (num_net.TTA_TILT, -num_net.TTA_TILT):
        for digit in digits:
            ndi.rotate(digit.astype(np.float32), angle, reshape=False, order=1, prefilter=False)
    rotated = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(3):
        for angle in (num_net.TTA_TILT, -num_net.TTA_TILT):
            taps, weights = num_net.tilt_taps(angle)
            np.einsum("njk,jk->nj", digits.reshape(1000, -1)[:, taps].astype(np.float32), weights)
    taps_time = (time.perf_counter() - start) / 3
    rows.append(f"| `tilt_taps` | `scipy.ndimage.rotate(order=1)` per digit | `read_proba`, 1,000 digits | "
                f"{1000 * with_taps:.1f} | {1000 * (with_taps - taps_time + rotated):.1f} | "
                f"{(rotated - taps_time) / (with_taps - taps_time + rotated):.0%} |")
    return "\n".join(rows)


def serve_load(data: str, clients: int = 20, total: int = 500) -> str:
    """`serve` under load: `clients` threads send `total` real-looking photos (tests/helpers/pages.py) and
    canvas drawings of MNIST test digits, each one `predict` reads right; every answer must match,
    and the server's resident memory is sampled as the requests go."""
    import concurrent.futures
    import http.client
    import random

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    sys.path.insert(0, str(ROOT))
    import num_net
    import pages

    with np.load(data, allow_pickle=False) as npz:
        x, y = npz["x_test"], npz["y_test"]
    with tempfile.TemporaryDirectory() as tmp:
        files = [(path, str(label)) for path, label in pages.write_pages(x, y, Path(tmp) / "photos", total // 2 + 60, seed=11)]
        rng = np.random.default_rng(12)
        for n, i in enumerate(rng.choice(len(x), total // 2 + 60, replace=False)):  # a drawing: dark ink on a white canvas
            canvas = Image.fromarray(255 - x[i]).resize((280, 280), Image.Resampling.BILINEAR)
            path = Path(tmp) / f"drawing_{n}.png"
            canvas.save(path)
            files.append((path, str(y[i])))
        results, _ = num_net.predict_files(num_net.load_reader(ROOT / "handwritten.keras"), [p for p, _ in files])
        right = [(p.read_bytes(), label) for (p, label), r in zip(files, results) if str(r.get("digit")) == label]
        random.Random(0).shuffle(right)
        jobs = right[:total]
        proc = subprocess.Popen([sys.executable, str(ROOT / "num_net.py"), "serve", "--port", "0", "--save-dir",
                                 str(Path(tmp) / "mine")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        rss = []

        def rss_mb() -> float:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

        def one(job) -> bool:
            body, label = job
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("POST", "/api/predict", body=body)
                response = connection.getresponse()
                answer = json.loads(response.read())
                connection.close()
            except (OSError, ValueError):
                return False
            return response.status == 200 and str(answer.get("digit")) == label

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            oks = []
            for k, ok in enumerate(pool.map(one, jobs)):
                oks.append(ok)
                if k % 100 == 0:
                    rss.append(rss_mb())
        seconds = time.perf_counter() - start
        rss.append(rss_mb())
        proc.send_signal(2)
        proc.communicate(timeout=10)
    return (f"serve: {clients} clients, {len(jobs)} images ({sum(oks)} answered right, {len(oks) - sum(oks)} wrong or "
            f"failed) in {seconds:.1f} s: {len(jobs) / seconds:.0f} images/s; server memory "
            f"{' -> '.join(f'{m:.0f}' for m in rss)} MB every 100 requests")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draw-latency", action="store_true", help="only time `draw`'s update per mouse move")
    parser.add_argument("--photo", action="store_true", help="only time preprocessing a 12-megapixel photo")
    parser.add_argument("--serve", action="store_true", help="only load `serve`: 20 clients, 500 photos and drawings")
    parser.add_argument("--folder", type=Path, help="only time `predict` on this folder, and its stages on one core")
    parser.add_argument("--kernels", action="store_true", help="only measure each fast kernel's share of its stage")
    parser.add_argument("--handwriting", type=Path, default=Path(os.environ.get("NUMNET_HANDWRITING",
                                                                               "../shared/handwriting")))
    parser.add_argument("--data", default=os.environ.get("NUMNET_DATA", "../shared/mnist/mnist.npz"))
    parser.add_argument("--recipe", type=Path, default=ROOT.parent / "shared" / "bench" / "seed_recipe.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--short", type=int, nargs="*", default=[1, 3], help="also time these short runs (seed 0)")
    args = parser.parse_args()
    if args.draw_latency:
        print(draw_latency())
        return 0
    if args.photo:
        print(photo_preprocessing(args.data))
        return 0
    if args.serve:
        print(serve_load(args.data))
        return 0
    if args.folder:
        print(folder_speed(args.folder))
        return 0
    if args.kernels:
        print(kernel_gains(args.data, args.handwriting))
        return 0
    rows = [tutorial(args.recipe, args.data, "one", 10), tutorial(args.recipe, args.data, "two", 3)]
    rows += [numnet(args.data, seed) for seed in args.seeds]
    rows += [numnet(args.data, 0, epochs) for epochs in args.short]
    base = rows[0]["wall"]
    print("| run | wall s | vs tutorial `one 10` | peak RSS MB | test accuracy | train samples/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        sps = f"{r['sps']:,}" if r["sps"] else "-"
        print(f"| {r['name']} | {r['wall']:.1f} | {r['wall'] / base:.2f}x | {r['rss']:.0f} | {r['acc']:.2%} | {sps} |")
    ours = [r for r in rows if r.get("default")]
    accs = [r["acc"] for r in ours]
    print(f"\nNumNet: mean test accuracy {statistics.mean(accs):.2%}, min {min(accs):.2%}; "
          f"mean wall {statistics.mean(r['wall'] for r in ours) / base:.2f}x the tutorial `one 10`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
