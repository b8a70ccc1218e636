"""A picture with each face boxed and labelled with its age and bucket."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from age_assets.serving.photos import FaceAge


def draw_faces(image: np.ndarray, faces: Sequence[FaceAge]) -> Image.Image:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 300))
    font = ImageFont.load_default(size=max(12, round(min(picture.size) / 30)))
    for face in faces:
        x, y, width, height = face.box
        draw.rectangle([x, y, x + width, y + height], outline=(255, 200, 0), width=line)
        label = f"{face.age:.0f} ({face.bucket})"
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        top_edge = max(0, y - (bottom - top) - 2 * line)
        draw.rectangle([x, top_edge, x + (right - left) + 2 * line, top_edge + (bottom - top) + 2 * line],
                       fill=(255, 200, 0))
        draw.text((x + line, top_edge + line - (top - y)), label, fill=(0, 0, 0), font=font)
    return picture
