"""Reading photos of any common kind into RGB uint8 arrays, with clear errors for bad files.

Decoding goes through Pillow, which reads the header before the pixels (so an absurdly large image
is refused before it is decoded) and reports truncated files instead of returning half-grey images.
Conversions, all deterministic:

- EXIF orientation is applied (as ``cv2.imread`` and therefore OpenFace do);
- grayscale, palette, CMYK, YCbCr and 1-bit images become RGB;
- an alpha channel is dropped (OpenFace's ``cv::imread`` does the same), it is not composited;
- 16-bit images are reduced to 8 bits (value / 257, rounded), never rescaled by their own range;
- of an animated GIF/PNG/WebP or a multi-page TIFF only the first frame is read;
  :func:`read_image_frames` also returns how many frames the file has, so callers can say so.

Memory: decoding needs about 3x the RGB size for a moment (a 48-megapixel photo: about 0.45 GB), so
the default limit of 100 megapixels keeps one read under about 1 GB.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sim2real_faces.errors import ProjectError

DEFAULT_MAX_PIXELS = 100_000_000
"""Images with more pixels (width x height) than this are refused before decoding (about 300 MB as RGB)."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)
"""File suffixes (lower case) treated as images when scanning folders."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageReadError(ProjectError, ValueError):
    """A file cannot be used as an image; the message names the file and what to do about it."""


def is_image_file(path: Path | str) -> bool:
    """True when ``path`` has one of :data:`IMAGE_SUFFIXES` (case-insensitive); the content is not checked."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


SKIP_REASONS: dict[str, str] = {
    "unsupported_format": "not an image suffix the project reads (text files, HEIC, ...)",
    "dangling_link": "a symbolic link whose target does not exist",
    "link_loop": "a symbolic link that leads back into itself or to a folder already being walked",
    "hidden": "a name starting with '.' (e.g. .DS_Store, .git)",
    "not_a_file": "neither a regular file nor a folder (socket, device, ...) or not accessible",
}
"""Why :func:`scan_folder` does not list an entry as an image."""


@dataclass(frozen=True)
class FolderEntry:
    """One entry seen below a scanned folder."""

    path: Path
    """The entry as reached from the folder (symbolic links are not resolved)."""
    rel: str
    """Its place inside the scanned folder, POSIX style (``happy/h0.jpg``)."""
    reason: str
    """"" for an image file, else one of :data:`SKIP_REASONS`."""


def scan_folder(folder: Path | str) -> list[FolderEntry]:
    """Every entry below ``folder`` (recursively, sorted by name), each an image or skipped with a reason.

    Symbolic links are followed (a link may point outside the folder; ``rel`` stays the link's own
    place), links that dangle or loop are reported, never followed forever. A hidden entry is
    reported once, not descended into. Folders themselves are not entries; their contents are.
    """
    folder = Path(folder)
    entries: list[FolderEntry] = []
    root = os.stat(folder)

    def visit(directory: Path, prefix: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            entries.append(FolderEntry(directory, prefix.rstrip("/"), "not_a_file"))
            return
        for name in names:
            path, rel = directory / name, f"{prefix}{name}"
            if name.startswith("."):
                entries.append(FolderEntry(path, rel, "hidden"))
                continue
            try:
                info = os.stat(path)  # follows links
            except OSError as error:
                if error.errno == errno.ELOOP:
                    reason = "link_loop"
                elif path.is_symlink():
                    reason = "dangling_link"
                else:
                    reason = "not_a_file"
                entries.append(FolderEntry(path, rel, reason))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in ancestors:
                    entries.append(FolderEntry(path, rel, "link_loop"))
                else:
                    visit(path, f"{rel}/", ancestors | {key})
            elif not stat.S_ISREG(info.st_mode):
                entries.append(FolderEntry(path, rel, "not_a_file"))
            else:
                entries.append(FolderEntry(path, rel, "" if is_image_file(name) else "unsupported_format"))

    visit(folder, "", frozenset({(root.st_dev, root.st_ino)}))
    return entries


def read_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as an RGB uint8 array of shape (H, W, 3) (the first frame of a multi-frame file).

    Raises :class:`ImageReadError` for a missing file, a file that is not an image (whatever its
    suffix), a corrupt or truncated image, an unsupported pixel format, or an image with more than
    ``max_pixels`` pixels.
    """
    return read_image_frames(path, max_pixels)[0]


def frames_note(n_frames: int) -> str:
    """The note for a file with several frames ('' for one frame)."""
    if n_frames <= 1:
        return ""
    return f"{n_frames} frames (animated or multi-page); only the first frame is read"


def read_image_frames(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """(first frame as RGB uint8 (H, W, 3), number of frames in the file); errors as :func:`read_image`.

    A JPEG that Pillow opens as MPO (phones store a preview or depth image beside the photo) counts as
    one frame: its first image is the photo itself.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file. Check the path (or the manifest row that names it).")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError as error:
        raise ImageReadError(
            f"{path}: not an image in a format Pillow can read (empty, a different kind of file with an "
            f"image suffix, or a damaged header). Replace it with a PNG/JPEG photo or remove it."
        ) from error
    except Image.DecompressionBombError as error:
        raise ImageReadError(
            f"{path}: too large to decode safely ({error}); the limit here is {max_pixels:,} pixels "
            f"(param face.max_pixels) and Pillow refuses twice its own limit. Downscale the photo."
        ) from error
    except OSError as error:
        raise ImageReadError(f"{path}: cannot open ({error}). Replace or remove the file.") from error
    except Exception as error:  # a damaged header can make a Pillow plugin raise anything
        raise ImageReadError(
            f"{path}: the image header is damaged ({type(error).__name__}: {error}). Replace or remove it."
        ) from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageReadError(
                f"{path}: {width}x{height} = {width * height:,} pixels is more than the limit of "
                f"{max_pixels:,} (param face.max_pixels). Downscale the photo (a face needs far fewer "
                f"pixels) or raise face.max_pixels."
            )
        if width == 0 or height == 0:
            raise ImageReadError(f"{path}: the image has no pixels ({width}x{height}). Replace or remove it.")
        try:
            n_frames = 1 if image.format == "MPO" else int(getattr(image, "n_frames", 1) or 1)
            if n_frames > 1:
                image.seek(0)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no second copy of a large photo
            return _to_rgb8(image, path), n_frames
        except ImageReadError:
            raise
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, zlib/struct errors
            raise ImageReadError(
                f"{path}: the image data is corrupt or truncated ({type(error).__name__}: {error}). "
                f"Copy or export the file again, or remove it."
            ) from error


def _to_rgb8(image: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded Pillow image of any supported mode to RGB uint8 (see module docstring)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        gray = ((values * 255 + 32767) // 65535).astype(np.uint8)  # = round(value / 257), no ties
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode == "F":
        raise ImageReadError(
            f"{path}: floating-point pixels (mode F) have no defined 0-255 range. Export it as 8- or 16-bit."
        )
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    return array if array.flags.writeable and array.flags.c_contiguous else array.copy()
