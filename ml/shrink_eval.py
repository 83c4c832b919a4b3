"""What shrinking photos before sending (producer.shrink) does to the tags and the bytes:
`python -m ml.shrink_eval`.

Photo-like test renders as they are, and shrunk to each max side, through the worker's
preprocessing and a checkpoint: accuracy and mean bytes sent.

    python -m ml.shrink_eval --checkpoint models/compact/model.pt --subset 2000
"""

from __future__ import annotations

import argparse

from producer.shrink import shrink


def evaluate(checkpoint: str, data_dir: str | None, subset: int, sides: list[int], seed: int) -> None:
    """Photo-like test renders as sent, and shrunk to each max side: accuracy and bytes."""
    import numpy as np
    import torch

    from ml import checkpoint as ckpt_io
    from ml import data as data_mod
    from ml import photo_eval, photos
    from ml.evaluate import predict

    ck = ckpt_io.load(checkpoint)
    test = data_mod.load_split(data_mod.resolve_root(data_dir), train=False, download=False)
    idx = photo_eval.subset_indices(len(test), subset, seed)
    labels = test.labels[idx]
    blobs = photos.render_split(test.images.numpy(), "test", seed, indices=idx)
    big = [photos.render_jpeg(test.images.numpy()[i], photos.photo_rng(seed + 1, "test", int(i)),
                              photos.PhotoStyle(min_side=1500, max_side=3000)) for i in idx]
    print(f"{len(idx):,} photo-like test renders, {ck.arch} model")
    print(f"{'inputs':34} {'max side':>8} {'mean KiB':>9} {'accuracy':>9}")
    for name, source in (("renders (200-1200 px, as evaluated)", blobs), ("large renders (1500-3000 px)", big)):
        for side in [None, *sides]:
            sent = source if side is None else [shrink(b, side) for b in source]
            images, errors, _ = photo_eval.preprocess_all(sent)
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
    evaluate(args.checkpoint, args.data_dir, args.subset, args.max_side, args.seed)


if __name__ == "__main__":
    from ml.data import run_cli

    run_cli(main)
