"""``folder:PATH`` corpora: a folder with one subfolder of images per class.

The folder is untrusted input: every image is decoded by Pillow under a size limit,
high-bit-depth images are scaled (not clipped) to 8 bits, and every way a folder can
be wrong (missing, unlistable, a broken or looping class link, zero-byte or damaged
files, decompression bombs, too many classes or files) ends in one
:class:`~nps.errors.NPSError` line naming the path and what to do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from nps.errors import NPSError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: The only Pillow decoders a folder's files may reach (Pillow picks one from the content, so an
#: EPS file named .png would otherwise run Ghostscript, and any of ~40 other parsers could run).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
#: Limits that keep a folder from exhausting memory or time; each says so in one line.
MAX_CLASSES = 1000
MAX_FILES = 200_000
MAX_PIXELS = 25_000_000   # per image, read from the header before decoding (the app's upload limit)
MAX_SIZE = 256            # side the images are resized to


def shown(path: Path) -> str:
    """A path for a one-line message: control characters in names (a newline in a file name) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise NPSError(f"cannot list folder '{shown(folder)}' ({exc.strerror or exc}); "
                       "check that it exists and is readable.") from None


def to_8bit(im, where: Path):  # PIL.Image.Image, imported lazily
    """A decoded image as an 8-bit Pillow image, scaling 16-bit and float data instead of clipping.

    Pillow's own ``convert("L")`` clips 16-bit values at 255 (a 16-bit PNG becomes
    almost white).  Modes ``I;16*`` and ``I`` holding 0..65535 are mapped to 0..255
    by v * 255 / 65535 (rounded); ``F`` in [0, 1] by v * 255.  Other modes are left to
    Pillow's conversions (they are already 8 bits per channel).
    """
    from PIL import Image
    if not (im.mode.startswith("I") or im.mode == "F"):
        return im
    a = np.asarray(im)
    if im.mode == "F":
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise NPSError(f"image '{shown(where)}' holds floating-point values outside 0..1; "
                           "save it as an 8- or 16-bit image.")
        out = np.rint(a.astype(np.float64) * 255.0)
    else:
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise NPSError(f"image '{shown(where)}' holds integer values outside 0..65535 ({im.mode}); "
                           "save it as an 8- or 16-bit image.")
        out = (a * 255 + 32767) // 65535  # rounded v * 255 / 65535
    return Image.fromarray(out.astype(np.uint8), mode="L")


def _read_one(f: Path, size: int, mode: str) -> np.ndarray:
    """Decode one file into a (size,size) or (size,size,3) uint8 array, or raise one NPSError line."""
    from PIL import Image
    if f.stat().st_size == 0:
        raise NPSError(f"image '{shown(f)}' is an empty (zero-byte) file; remove or replace it.")
    with warnings.catch_warnings():
        # Between 1x and 2x its pixel limit Pillow only warns; make that an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(f, formats=IMAGE_FORMATS) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise NPSError(f"image '{shown(f)}' is {w}x{h} pixels (more than {MAX_PIXELS:,}); "
                                   "shrink it or remove it from the folder.")
                im.load()
                im8 = to_8bit(im, f)
                return np.asarray(im8.convert(mode).resize((size, size), Image.BILINEAR), np.uint8)
        except NPSError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise NPSError(f"image '{shown(f)}' is a decompression bomb (too many pixels for its size); "
                           "remove it from the folder.") from None
        except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NPSError(f"cannot read image '{shown(f)}' ({first}); remove or replace it.") from None


def _class_folders(path: Path) -> list[Path]:
    out = []
    for p in _listdir(path):
        if p.name.startswith("."):  # hidden folders (.ipynb_checkpoints, .git ...) are not classes
            continue
        if p.is_symlink() and not p.exists():
            raise NPSError(f"class folder '{shown(p)}' is a broken symbolic link or a link loop; fix or remove it.")
        if p.is_dir():
            out.append(p)
    return out


def read_image_folder(path: Path, size: int = 28, mode: str = "L",
                      test_fraction: float = 0.2) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    """Read ``path/<class>/*.png`` (and the other :data:`IMAGE_SUFFIXES`) into uint8 arrays.

    Args:
        size: the side every image is resized to (bilinear), 1..:data:`MAX_SIZE`.
        mode: "L" for grayscale (N,H,W) or "RGB" for (N,H,W,3).
        test_fraction: the share of each class (every k-th file, sorted by name) kept for test.
    Returns:
        ((train (N,size,size[,3]) uint8, train labels (N,) int64, test, test labels), class names);
        the label of an image is the index of its class folder in sorted order.
    Raises:
        NPSError: one line for each malformed input (see the module docstring).
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise NPSError(f"image size {size} is invalid; give a size from 1 to {MAX_SIZE}, such as 28.")
    if not str(path).strip():
        raise NPSError("folder corpus path is empty; give folder:PATH with a folder of class subfolders.")
    if not path.is_dir():
        raise NPSError(f"folder corpus '{shown(path)}' does not exist; give a folder with one subfolder per class.")
    classes = _class_folders(path)
    if not classes:
        raise NPSError(f"folder corpus '{shown(path)}' has no class subfolders; put images in {shown(path)}/<class>/.")
    if len(classes) > MAX_CLASSES:
        raise NPSError(f"folder corpus '{shown(path)}' has {len(classes)} class subfolders (at most {MAX_CLASSES}); "
                       "point folder: at the folder that holds the class folders.")
    listing = []
    total = 0
    for cls in classes:
        files = [f for f in _listdir(cls)
                 if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()]
        total += len(files)
        if total > MAX_FILES:
            raise NPSError(f"folder corpus '{shown(path)}' has more than {MAX_FILES:,} images; use a smaller folder.")
        listing.append(files)
    step = max(2, round(1 / test_fraction)) if test_fraction > 0 else 0
    buckets: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    for label, files in enumerate(listing):
        for i, f in enumerate(files):
            try:
                arr = _read_one(f, size, mode)
            except OSError as exc:  # stat() on a file that vanished or is unreadable
                raise NPSError(f"cannot read image '{shown(f)}' ({exc.strerror or exc}); "
                               "remove or replace it.") from None
            is_test = bool(step) and len(files) >= 2 and i % step == step - 1
            buckets[is_test][0].append(arr)
            buckets[is_test][1].append(label)
    if not buckets[False][0]:
        raise NPSError(f"folder corpus '{shown(path)}' has no readable images ({', '.join(IMAGE_SUFFIXES)}).")

    def stack(b: tuple[list, list]) -> tuple[np.ndarray, np.ndarray]:
        shape = (0, size, size) if mode == "L" else (0, size, size, 3)
        x = np.stack(b[0]) if b[0] else np.zeros(shape, np.uint8)
        return x, np.asarray(b[1], np.int64)
    x, y = stack(buckets[False])
    xt, yt = stack(buckets[True])
    return (x, y, xt, yt), tuple(c.name for c in classes)


__all__ = ["IMAGE_SUFFIXES", "MAX_CLASSES", "MAX_FILES", "MAX_PIXELS", "read_image_folder", "to_8bit"]
