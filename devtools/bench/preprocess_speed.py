"""Preprocessing throughput on one core: images per second for a few typical inputs.

    python -m devtools.bench.preprocess_speed            # ~20 s
    python -m devtools.bench.preprocess_speed --seconds 1 --json bench.json
    python -m devtools.bench.preprocess_speed --photos   # the photo mix and the decoders, old vs new (~2 min)

Inputs (built in memory, deterministic): a Fashion-MNIST-sized 28 x 28 grey PNG (the service's
hot path); a 1000 x 1000 product-photo-like colour JPEG (quality 90) as a clean studio shot and
with sensor noise (sigma 3), which triples the file and libjpeg's entropy decoding, the part that
draft mode cannot skip; the noisy photo as a PNG. The last line times the JPEG decode alone.
Each is timed for `--seconds` in `--repeats` rounds and the best round is reported, as images
per CPU second of the calling thread (the per-core figure: on a shared machine wall-clock time
also counts the wait for a core) and per wall-clock second. Runs on the calling thread only.

`--photos`: the photo mix (`photo_mix`: 80% JPEG, 10% transparent PNG, 10% WebP, 200-1200 px a
side, photo-like renders of synthetic items, deterministic) and 1000 px JPEGs at quality 85-90,
through the old path (`preprocess_pillow`: Pillow only), the new one (`preprocess`: the fastest
decoder per format) and the new one with colours (`preprocess_with_colours`), then each
decoder alone per format (the header open included; the decode only: JPEG scaled to about
WORK_SIZE, PNG and WebP in full, as each decoder returns them). The rows of a group are timed
interleaved, image by image, as mean CPU ms per image of the calling thread: compare rows within
a group of one run, not across machines or runs.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from devtools.bench.timing import best_rate
from ml import preprocess as pre
from ml.preprocess import _draft, preprocess


def _item(size: int = 28) -> np.ndarray:
    """A synthetic garment-like 28 x 28 image (bright item, black background), no dataset needed."""
    yy, xx = np.mgrid[0:size, 0:size]
    body = (np.abs(xx - 13.5) < 7 + yy / 6) & (yy > 2)
    sleeves = (yy > 3) & (yy < 12) & (np.abs(xx - 13.5) < 13)
    shade = 120 + 100 * np.sin(xx / 3.0) ** 2 + yy * 1.2
    return np.where(body | sleeves, np.clip(shade, 0, 255), 0).astype(np.uint8)


def inputs() -> dict[str, bytes]:
    """The benchmark's images, as the bytes a backend would send."""
    item = _item()
    small = io.BytesIO()
    Image.fromarray(item, "L").save(small, "PNG")
    photo = Image.new("RGB", (1000, 1000), (250, 250, 248))
    mask = Image.fromarray(item, "L").resize((760, 760), Image.Resampling.BICUBIC)
    photo.paste((30, 60, 140), (130, 90, 890, 850), mask)
    rng = np.random.default_rng(0)  # sensor noise: JPEG decoding time grows with the file size
    noisy = np.clip(np.asarray(photo, dtype=np.int16) + rng.normal(0, 3, (1000, 1000, 3)).astype(np.int16), 0, 255)
    noisy_photo = Image.fromarray(noisy.astype(np.uint8), "RGB")
    studio, jpeg, png = io.BytesIO(), io.BytesIO(), io.BytesIO()
    photo.save(studio, "JPEG", quality=90)
    noisy_photo.save(jpeg, "JPEG", quality=90)
    noisy_photo.save(png, "PNG")
    return {"28x28 PNG (grey)": small.getvalue(),
            "1000x1000 JPEG (studio, q90)": studio.getvalue(),
            "1000x1000 JPEG (noisy, q90)": jpeg.getvalue(),
            "1000x1000 PNG (noisy)": png.getvalue()}


def _decode_only(blob: bytes) -> Callable[[], object]:
    """The floor for a JPEG: open + draft + decode, none of the rest of preprocess."""
    def run() -> object:
        img = Image.open(io.BytesIO(blob))
        _draft(img)
        img.load()
        return img
    return run





# ---------------------------------------------------------------------------------------------
# the photo mix, old path vs new, and the decoders per format


def _items() -> list[np.ndarray]:
    """Four synthetic 28 x 28 garment-like silhouettes (top, trousers, bag, shoe), no dataset needed."""
    yy, xx = np.mgrid[0:28, 0:28]
    shade = 150 + 90 * np.sin(xx / 3.0 + yy / 5.0) ** 2
    trousers = (yy > 2) & (yy < 26) & (np.abs(xx - 13.5) < 9) & ~((yy > 10) & (np.abs(xx - 13.5) < 2))
    bag = ((yy > 9) & (yy < 25) & (xx > 3) & (xx < 24)) | ((np.hypot(xx - 13.5, yy - 9) < 7) & (np.hypot(xx - 13.5, yy - 9) > 5))
    shoe = ((yy > 14) & (yy < 22) & (xx > 1) & (xx < 26)) | ((yy > 6) & (yy < 22) & (xx > 1) & (xx < 12))
    return [_item()] + [np.where(m, np.clip(shade, 0, 255), 0).astype(np.uint8) for m in (trousers, bag, shoe)]


def _photo(rng: np.random.Generator, item: np.ndarray, min_side: int, max_side: int) -> Image.Image:
    from ml.photos import PhotoStyle, render_image

    return render_image(item, rng, PhotoStyle(min_side=min_side, max_side=max_side))


def _cutout(rng: np.random.Generator, item: np.ndarray) -> Image.Image:
    """A transparent product cut-out: the item's colour where it is, alpha its intensity."""
    w, h = (int(v) for v in rng.integers(200, 1201, 2))
    side = max(8, round(rng.uniform(0.5, 0.95) * min(w, h)))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    alpha = Image.new("L", (w, h), 0)
    alpha.paste(Image.fromarray(item).resize((side, side), Image.Resampling.BICUBIC), (x, y))
    out = Image.new("RGBA", (w, h), tuple(int(c) for c in rng.integers(0, 200, 3)) + (0,))
    out.putalpha(alpha)
    return out


def photo_mix(count: int = 200, seed: int = 0) -> list[tuple[str, bytes]]:
    """(format, bytes): 80% JPEG (quality 70-95), 10% transparent RGBA PNG, 10% lossy WebP
    (quality 75-90), 200-1200 px a side; photo-like renders (ml.photos) of synthetic items."""
    items = _items()
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, 31, i])
        item = items[i % len(items)]
        buf = io.BytesIO()
        kind = "PNG" if i % 10 == 4 else "WEBP" if i % 10 == 9 else "JPEG"
        if kind == "PNG":
            _cutout(rng, item).save(buf, "PNG")
        elif kind == "WEBP":
            _photo(rng, item, 200, 1200).save(buf, "WEBP", quality=int(rng.integers(75, 91)))
        else:
            _photo(rng, item, 200, 1200).save(buf, "JPEG", quality=int(rng.integers(70, 96)))
        out.append((kind, buf.getvalue()))
    return out


def jpeg_photos(count: int = 40, seed: int = 0) -> list[bytes]:
    """1000 x 1000 photo-like JPEGs at quality 85-90 (the JPEG-only target's inputs)."""
    items = _items()
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, 32, i])
        buf = io.BytesIO()
        _photo(rng, items[i % len(items)], 1000, 1000).save(buf, "JPEG", quality=int(rng.integers(85, 91)))
        out.append(buf.getvalue())
    return out


def _pillow_decoder(blob: bytes) -> object:
    """Pillow as the old path decodes: JPEG in draft mode to grey; PNG and WebP in full."""
    img = Image.open(io.BytesIO(blob))
    _draft(img)
    img.load()
    return img


def decoders() -> dict[str, dict[str, Callable[[bytes], object]]]:
    """format -> decoder name -> decode(bytes) (header open included), for the installed decoders."""
    from ml import decode

    def header(blob: bytes) -> Image.Image:
        return Image.open(io.BytesIO(blob))

    def simplejpeg_grey(blob: bytes) -> object:
        img = header(blob)
        return decode.jpeg(img, blob, pre._jpeg_scale(img.size), colour=False)

    def simplejpeg_rgb(blob: bytes) -> object:
        img = header(blob)
        return decode.jpeg(img, blob, pre._jpeg_scale(img.size), colour=True)

    def simplejpeg_rgb_and_grey(blob: bytes) -> object:  # what preprocess_with_colours does
        return pre.rgbx_to_gray(simplejpeg_rgb(blob))

    def pillow_draft(mode: str) -> Callable[[bytes], object]:
        def run(blob: bytes) -> object:
            img = header(blob)
            _draft(img, mode=mode)
            img.load()
            return img
        return run

    out: dict[str, dict[str, Callable[[bytes], object]]] = {
        "JPEG": {"Pillow draft, grey (old)": _pillow_decoder, "Pillow draft, RGB": pillow_draft("RGB"),
                 "Pillow draft, YCbCr (Y is grey)": pillow_draft("YCbCr"),
                 "simplejpeg scaled, grey": simplejpeg_grey, "simplejpeg scaled, RGB": simplejpeg_rgb,
                 "simplejpeg scaled, RGB + grey": simplejpeg_rgb_and_grey},
        "PNG": {"Pillow (old)": _pillow_decoder, "pyspng": lambda b: decode.png(header(b), b)},
        "WEBP": {"Pillow (old)": _pillow_decoder, "libwebp WebPDecode (webp)": lambda b: decode.webp(header(b), b)},
    }
    try:  # for comparison only: OpenCV is not a dependency
        import cv2

        cv2.setNumThreads(1)
        reduced = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                   8: cv2.IMREAD_REDUCED_GRAYSCALE_8}

        def cv2_jpeg(blob: bytes) -> object:
            flag = reduced[pre._jpeg_scale(header(blob).size)] | cv2.IMREAD_IGNORE_ORIENTATION
            return cv2.imdecode(np.frombuffer(blob, np.uint8), flag)

        def cv2_full(blob: bytes) -> object:
            header(blob)
            return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)

        out["JPEG"]["OpenCV reduced, grey"] = cv2_jpeg
        out["PNG"]["OpenCV"] = cv2_full
        out["WEBP"]["OpenCV"] = cv2_full
    except ImportError:
        pass
    return out


def _interleaved(fns: dict[str, Callable[[bytes], object]], blobs: list[bytes], seconds: float) -> dict[str, float]:
    """Mean CPU seconds per image of each fn, calling all of them on one image before the next
    (in a rotating order), for at least `seconds` in all: on a shared machine a neighbour's load
    then weighs on every fn alike, which separate timing rounds do not ensure."""
    names = list(fns)
    spent = dict.fromkeys(names, 0.0)
    calls, start, rotation = 0, time.thread_time(), 0
    while calls == 0 or time.thread_time() - start < seconds:
        for blob in blobs:
            rotation += 1
            for name in names[rotation % len(names):] + names[: rotation % len(names)]:
                t0 = time.thread_time()
                try:
                    fns[name](blob)
                except pre.ImageError:
                    pass
                spent[name] += time.thread_time() - t0
        calls += len(blobs)
    return {name: t / calls for name, t in spent.items()}


def photo_rows(seconds: float, repeats: int, count: int = 200) -> list[dict[str, object]]:
    """Old path, new path, new path with colours, and the decoders: CPU ms per image, each group
    interleaved image by image (`_interleaved`) for seconds x repeats."""
    mix = photo_mix(count)
    sets = {f: [b for k, b in mix if k == f] for f in ("JPEG", "PNG", "WEBP")}
    sets["mix"] = [b for _, b in mix]
    sets["JPEG 1000px q85-90"] = jpeg_photos()
    paths = {"old (Pillow)": pre.preprocess_pillow, "new": preprocess, "new + colours": pre.preprocess_with_colours}
    groups = [(name, "path", paths, blobs) for name, blobs in sets.items()]
    groups += [(fmt, "decoder", decs, sets[fmt]) for fmt, decs in decoders().items()]
    for _, _, fns, blobs in groups:  # warm up (and the colour tables)
        for fn in fns.values():
            for b in blobs[:3]:
                fn(b)
    rows = []
    for name, kind, fns, blobs in groups:
        for label, t in _interleaved(fns, blobs, seconds * repeats).items():
            rows.append({"set": name, "kind": kind, "what": label, "images": len(blobs),
                         "mean_kib": sum(map(len, blobs)) / len(blobs) / 1024, "cpu_ms_per_image": 1000 * t})
    return rows


def print_photo_rows(rows: list[dict[str, object]]) -> None:
    print(f"{'set':20} {'images':>6} {'mean KiB':>8}  {'what':30} {'CPU ms/image':>12}  {'vs old':>6}")
    old: dict[tuple[str, str], float] = {}
    for r in rows:
        ms = float(r["cpu_ms_per_image"])
        key = (str(r["set"]), str(r["kind"]))
        if "old" in str(r["what"]):
            old[key] = ms
        ratio = old.get(key, ms) / ms
        print(f"{r['set']!s:20} {r['images']:6} {float(r['mean_kib']):8.1f}  {r['what']!s:30} {ms:12.3f}  "
              f"{ratio:5.2f}x", flush=True)
    paths = {(str(r["set"]), str(r["what"])): float(r["cpu_ms_per_image"]) for r in rows if r["kind"] == "path"}
    for name in dict.fromkeys(k[0] for k in paths):
        new, colours = paths[(name, "new")], paths[(name, "new + colours")]
        print(f"colours cost on {name}: +{colours - new:.3f} ms/image, {100 * (colours - new) / new:.0f}% of the new path")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Print (and optionally save) the throughput table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timing round")
    p.add_argument("--repeats", type=int, default=3, help="rounds per input; the best is reported")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--photos", action="store_true", help="the photo mix and the decoders, old vs new path")
    p.add_argument("--count", type=int, default=200, help="images in the photo mix (--photos)")
    args = p.parse_args(argv)
    if args.photos:
        rows = photo_rows(args.seconds, args.repeats, args.count)
        print_photo_rows(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return {f"{r['set']}: {r['what']}": r for r in rows}
    results = {}
    cases = [(name, blob, lambda b=blob: preprocess(b)) for name, blob in inputs().items()]
    jpeg = inputs()["1000x1000 JPEG (noisy, q90)"]
    cases.append(("  of which JPEG decode (draft)", jpeg, _decode_only(jpeg)))
    print(f"{'input':32} {'size':>11}  {'per CPU second':>14}  {'per wall second':>15}  {'CPU us/image':>12}")
    for name, blob, fn in cases:
        wall, cpu = best_rate(lambda f=fn: (f(), 1)[1], args.seconds, args.repeats)
        results[name.strip()] = {"images_per_cpu_s": cpu, "images_per_wall_s": wall, "cpu_us_per_image": 1e6 / cpu,
                                 "bytes": len(blob)}
        print(f"{name:32} {len(blob) / 1024:7.1f} KiB  {cpu:14,.0f}  {wall:15,.0f}  {1e6 / cpu:12.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
