"""Client-side shrinking of a large photo before it is sent: Pillow only (no numpy, no torch).

The worker reduces every photo to a working image of 112-224 px on its short side
(`ml.preprocess.WORK_SIZE`), so the pixels beyond a few hundred on a side only cost bytes on the
wire, in Redis and in the worker's decoder. `shrink(image_bytes, max_side)` returns a JPEG (or a
PNG, for an image with transparency) no larger than max_side on its long side, upright (the EXIF
orientation applied), or the original bytes when they are already small enough or when shrinking
would not make them smaller. The default max_side, 512, keeps the tags (docs/decoders.md):

    python -m ml.shrink --checkpoint models/compact/model.pt --data-dir ../shared/data --subset 2000

This module is to move into the client package: it imports nothing from ml but the standard
library and Pillow.
"""

from __future__ import annotations

import argparse
import io

from PIL import Image, ImageOps

MAX_SIDE = 512
JPEG_QUALITY = 90
FORMATS = ("JPEG", "PNG", "WEBP")


def shrink(image_bytes: bytes, max_side: int = MAX_SIDE, quality: int = JPEG_QUALITY) -> bytes:
    """`image_bytes` (JPEG, PNG or WebP) with its long side at most `max_side` pixels.

    Returns the input unchanged when it is not one of those formats or cannot be read (the
    service then gives its own error), when it is already small enough, or when the shrunk
    encoding would be larger. A JPEG is decoded with libjpeg's scaled decode (draft mode) first.
    """
    try:
        img = Image.open(io.BytesIO(image_bytes), formats=FORMATS)
        w, h = img.size
        if max(w, h) <= max_side:
            return image_bytes
        if img.format == "JPEG":  # decode at the smallest 1/2^k scale still >= max_side
            img.draft("RGB" if img.mode not in ("L", "CMYK") else img.mode, (max_side, max_side))
        img = ImageOps.exif_transpose(img)  # upright; the result carries no orientation tag
        alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
        if alpha:
            img = img.convert("LA" if img.mode in ("L", "LA", "La") else "RGBA")
        elif img.mode not in ("L", "RGB"):
            img = img.convert("L" if img.mode in ("1", "I", "I;16", "F") else "RGB")
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        out = io.BytesIO()
        if alpha:
            img.save(out, "PNG")
        else:
            img.save(out, "JPEG", quality=quality)
    except Exception:  # noqa: BLE001 - a client helper: the service reports bad images itself
        return image_bytes
    shrunk = out.getvalue()
    return shrunk if len(shrunk) < len(image_bytes) else image_bytes


def _evaluate(checkpoint: str, data_dir: str | None, subset: int, sides: list[int], seed: int) -> None:
    """Photo-like test renders as sent, and shrunk to each max side: accuracy and bytes."""
    import numpy as np
    import torch

    from ml import checkpoint as ckpt_io
    from ml import data as data_mod
    from ml import photos
    from ml.evaluate import predict

    ck = ckpt_io.load(checkpoint)
    test = data_mod.load_split(data_mod.resolve_root(data_dir), train=False, download=False)
    idx = photos._subset(len(test), subset, seed)
    labels = test.labels[idx]
    blobs = photos.render_split(test.images.numpy(), "test", seed, indices=idx)
    big = [photos.render_jpeg(test.images.numpy()[i], photos._rng(seed + 1, "test", int(i)),
                              photos.PhotoStyle(min_side=1500, max_side=3000)) for i in idx]
    print(f"{len(idx):,} photo-like test renders, {ck.arch} model")
    print(f"{'inputs':34} {'max side':>8} {'mean KiB':>9} {'accuracy':>9}")
    for name, source in (("renders (200-1200 px, as evaluated)", blobs), ("large renders (1500-3000 px)", big)):
        for side in [None, *sides]:
            sent = source if side is None else [shrink(b, side) for b in source]
            images, errors, _ = photos.preprocess_all(sent)
            pred, _ = predict(ck.model, torch.from_numpy(images))
            for i in errors:
                pred[i] = -1
            acc = float((pred == labels).float().mean())
            kib = float(np.mean([len(b) for b in sent])) / 1024
            print(f"{name:34} {side or 'as is':>8} {kib:9.1f} {100 * acc:8.2f}%", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="model.pt to measure the accuracy with")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: $FASHION_MNIST_ROOT or data/)")
    p.add_argument("--subset", type=int, default=2000, help="test images")
    p.add_argument("--max-side", type=int, nargs="+", default=[768, 512, 384, 256])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _evaluate(args.checkpoint, args.data_dir, args.subset, args.max_side, args.seed)


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
