"""Uploaded bytes -> ``(H, W, 3)`` uint8 RGB, checking type, size and pixel count before any full decode.

Order of checks: declared content type (415), byte size (413), header-only open to read width x height (413 above
``max_pixels``; 400 when the bytes are not an image), decoded format against the accepted types (415), then the
full decode (400 when truncated or corrupt). EXIF orientation is applied so boxes line up with what a browser shows.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rtvp.service.errors import ServiceError

FORMAT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "BMP": "image/bmp", "TIFF": "image/tiff",
                "WEBP": "image/webp", "GIF": "image/gif"}
"""PIL format name -> MIME type (an upload is accepted when its decoded format's type is accepted)."""


def check_content_type(content_type: str | None, accepted: tuple[str, ...]) -> None:
    """Raise 415 unless the part's declared ``Content-Type`` is accepted (parameters like ``; charset`` ignored)."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared not in accepted:
        raise ServiceError(415, "unsupported_media_type",
                           f"image content type '{declared or 'missing'}' is not accepted; send one of "
                           f"{', '.join(accepted)} (curl: -F 'image=@part.png;type=image/png')")


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> ``(H, W, 3)`` uint8 RGB; 16-bit / float images are min-max scaled like ``read_image``."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, max_pixels: int, accepted: tuple[str, ...]) -> np.ndarray:
    """Decode an uploaded image.

    Args:
        data: the file bytes.
        max_pixels: largest ``width * height`` accepted.
        accepted: accepted MIME types (the decoded format must be one of them too).

    Returns:
        ``(H, W, 3)`` uint8 RGB array (first frame of multi-frame files).

    Raises:
        ServiceError: 400 empty / not an image / corrupt, 413 too many pixels, 415 format not accepted.
    """
    if not data:
        raise ServiceError(400, "empty_image", "the 'image' part is empty; attach an image file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise _too_many(width, height, max_pixels)
            fmt = FORMAT_TYPES.get(im.format or "", f"image/{(im.format or 'unknown').lower()}")
            if fmt not in accepted:
                raise ServiceError(415, "unsupported_media_type",
                                   f"the file is {im.format} ({fmt}), which is not accepted; send one of "
                                   f"{', '.join(accepted)}")
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im) or im)
    except Image.DecompressionBombError as e:  # PIL's own guard (2 x Image.MAX_IMAGE_PIXELS)
        raise ServiceError(413, "image_too_large", f"image rejected as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ServiceError(400, "bad_image", "the 'image' part is not a readable image (unknown format); send "
                                             "a PNG, JPEG, BMP, TIFF or WebP file") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ServiceError(400, "bad_image", f"the image is corrupt or truncated and cannot be decoded ({e})") from None


def _too_many(width: int, height: int, max_pixels: int) -> ServiceError:
    return ServiceError(413, "image_too_large",
                        f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} "
                        f"(downscale it or raise --max-pixels)")
