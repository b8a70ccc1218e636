"""Pixels as every model here sees them: 8-bit RGB, squared by OpenCV (no pandas, no TensorFlow)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB. PIL's own conversion clips 16-bit greyscale at 255 (a white face),
    so those values are scaled down instead; alpha is dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values: np.ndarray = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values / 257
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def square(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB pixels resized to [size, size, 3], aspect ratio not kept: area averaging when
    shrinking, bilinear when enlarging (OpenCV, about four times faster than Pillow)."""
    if pixels.shape[:2] == (size, size):
        return pixels
    shrinking = pixels.shape[0] * pixels.shape[1] > size * size
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
