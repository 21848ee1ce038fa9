"""Opening images people send, with a bound on what decoding them may cost."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

MAX_PIXELS = 25_000_000
"""Pixels of an image to decode (a 5000×5000 picture); larger ones are refused unread."""


@contextmanager
def open_image(data: bytes, formats: tuple[str, ...] | None = None) -> Iterator[Image.Image]:
    """``data`` opened by Pillow, its pixels not yet decoded.

    Raises ``Image.DecompressionBombError`` when it has more than :data:`MAX_PIXELS`,
    and Pillow's own errors when it is not an image.
    """
    with Image.open(io.BytesIO(data), formats=formats) as image:
        if image.width * image.height > MAX_PIXELS:
            raise Image.DecompressionBombError(f"{image.width}×{image.height} pixels")
        yield image
