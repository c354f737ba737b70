"""Images out: a sample's file read (or an object's box cut out of it),
downscaled and encoded as a data URL.

PNG and GIF sources stay PNG (drawings, screenshots, transparency: lossless
keeps them legible); everything else is sent as JPEG, which is several times
smaller for photographs. Files that cannot be read raise UnreadableImage so
the caller can take another sample.
"""

import base64
import io
from dataclasses import dataclass

_LOSSLESS = ("PNG", "GIF")
_JPEG_QUALITY = 85


class UnreadableImage(Exception):
    """A sample's file is missing or not an image."""


@dataclass
class EncodedImage:
    sample_id: str
    data_url: str


def encode(sample_id, filepath, max_size, box=None):
    """The image at ``filepath`` (its part inside ``box``, relative
    ``[x, y, width, height]`` as FiftyOne stores boxes), long side at most
    ``max_size`` pixels."""
    from PIL import Image, ImageOps

    try:
        with Image.open(filepath) as image:
            source_format = image.format
            if box is None:
                image.draft("RGB", (max_size, max_size))
            image = ImageOps.exif_transpose(image)
            if box is not None:
                image = image.crop(_pixels(box, *image.size))
            image.thumbnail((max_size, max_size), Image.LANCZOS)
            buffer = io.BytesIO()
            if source_format in _LOSSLESS:
                mime = "image/png"
                if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                    image = image.convert("RGBA")
                image.save(buffer, format="PNG")
            else:
                mime = "image/jpeg"
                _flatten(image).save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnreadableImage(f"{filepath}: {type(e).__name__}: {e}") from None
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return EncodedImage(sample_id, f"data:{mime};base64,{data}")


def _pixels(box, width, height):
    """A relative box as the pixel rectangle it covers (at least one pixel)."""
    x, y, w, h = box
    left, top = int(x * width), int(y * height)
    return (min(left, width - 1), min(top, height - 1),
            max(left + 1, min(width, round((x + w) * width))),
            max(top + 1, min(height, round((y + h) * height))))


def _flatten(image):
    """RGB for JPEG: transparency composited on white, other modes converted."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode in ("RGB", "L") else image.convert("RGB")
