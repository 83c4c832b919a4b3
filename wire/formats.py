"""The image formats a job may carry, and how to recognise them from their first bytes."""

from __future__ import annotations

# Pillow's format names; ml.preprocess decodes exactly these.
IMAGE_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP"})
# File name suffixes (lower case) of those formats, for tools that pick image files from a folder.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp"})
SNIFF_BYTES = 12  # enough of a file's head for sniff_format


def sniff_format(head: bytes) -> str | None:
    """"PNG", "JPEG" or "WEBP" from a file's first bytes (its magic number); None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None
