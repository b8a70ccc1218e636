"""Pictures as users send them: every awkward kind decodes upright, every bad one names itself."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from age_assets.cli import _face_rows
from age_assets.serving.photos import LOW_CONFIDENCE, FaceAge, PhotoError, PhotoTooLarge, decode_photo


def _encoded(image: Image.Image, format: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **options)
    return out.getvalue()


def _picture(width: int = 60, height: int = 40) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (200, 30, 30)  # red left half: where it ends up tells the orientation
    return Image.fromarray(pixels)


def test_greyscale_cmyk_and_rgba_come_back_as_rgb() -> None:
    for image, fmt in [(_picture().convert("L"), "JPEG"), (_picture().convert("CMYK"), "JPEG"),
                       (_picture().convert("RGBA"), "PNG")]:
        pixels = decode_photo(_encoded(image, fmt), "x")
        assert pixels.dtype == np.uint8 and pixels.shape == (40, 60, 3)


def test_an_exif_rotated_photo_comes_back_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown rotated 90 degrees clockwise
    pixels = decode_photo(_encoded(_picture(), exif=exif), "rotated.jpg")
    assert pixels.shape == (60, 40, 3)
    assert pixels[:20, :, 0].mean() > 150 > pixels[-20:, :, 0].mean(), "the red half is now on top"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"plain text, not a picture", "not an image"),
    (_encoded(_picture(400, 300))[:300], "damaged or truncated"),
])
def test_bad_bytes_name_the_file_and_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(PhotoError, match=f"^upload.jpg: {message}"):
        decode_photo(data, "upload.jpg")


def test_the_pixel_limit_is_checked_before_decoding() -> None:
    data = _encoded(_picture(300, 200), "PNG")
    with pytest.raises(PhotoTooLarge, match=r"big.png: 300x200 pixels, over the limit of 50,000"):
        decode_photo(data, "big.png", max_pixels=50_000)
    assert decode_photo(data, "big.png", max_pixels=60_000).shape == (200, 300, 3)


def _png_header(width: int, height: int) -> bytes:
    """A bilevel PNG that declares ``width`` x ``height`` and holds no pixels: what Image.open reads."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def test_a_picture_over_pillows_own_bomb_limit_is_too_large_not_damaged() -> None:
    with pytest.raises(PhotoTooLarge, match=r"huge.png: more pixels than the limit of 40,000,000"):
        decode_photo(_png_header(16000, 16000), "huge.png")


def test_draft_decodes_a_large_jpeg_at_a_reduced_scale_only_when_asked() -> None:
    data = _encoded(_picture(1600, 1200))
    assert decode_photo(data, "x").shape == (1200, 1600, 3)
    assert decode_photo(data, "x", draft=224).shape == (300, 400, 3)


def test_a_face_kept_under_the_confidence_is_flagged_in_the_csv_row() -> None:
    def face(score: float | None) -> FaceAge:
        return FaceAge(0, (1, 2, 3, 4), score, 30.0, "28-45", {"28-45": 1.0})

    rows = [next(_face_rows(Path("a.jpg"), [face(score)])) for score in (LOW_CONFIDENCE - 0.01, LOW_CONFIDENCE, None)]
    assert [row["low_confidence"] for row in rows] == [True, False, ""]
    assert list(rows[0]).index("low_confidence") == list(rows[0]).index("score") + 1
