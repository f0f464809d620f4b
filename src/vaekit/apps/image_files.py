"""Images to and from files: `.npy`/`.npz` arrays, IDX files and folders of grey PNGs (used by `vaekit compress`).

    x, source = read_images("digits/")           # (N, H, W) uint8 (mode "L") or bool (mode "1"), names sorted
    write_images("restored/", x, source)          # the same pixels, modes and (given `source`) file names

Forms, chosen by the path:
    x.npy                    one array, kept as it is (shape and dtype)
    x.npz                    read: its array 'x', or its only array; written: one array 'x' (compressed)
    *-idx3-ubyte, *.idx      IDX (MNIST's format; the name ends in `idx<d>-ubyte` or `.idx<d>`, optionally `.gz`,
                             or, when reading, any file that starts with an IDX magic number); read plain or
                             gzipped by `vaekit.data.mnist.read_idx`; written big-endian with the type byte of the
                             dtype (uint8 0x08, int8 0x09, int16 0x0B, int32 0x0C, float32 0x0D, float64 0x0E;
                             booleans as uint8 0/1), gzipped when the name ends in `.gz`
    folder/ (or no suffix)   every `*.png` directly in the folder (not in subfolders; hidden files skipped), in
                             sorted name order, all of one size; grey 8-bit (mode "L") images read as uint8
                             0..255, binary (mode "1") ones as bool; other modes (RGB, palette, 16-bit, alpha)
                             are refused. An empty folder is an error.

Writing a PNG folder: boolean arrays, and integer arrays holding only 0 and 1, become binary (mode "1") PNGs;
other integers in 0..255 grey (mode "L"); floats in [0, 1] (a lossy decode) grey levels round(255 x). Images are
(N, H, W) or (N, 1, H, W). The file names are those of `source` when it has one per image, else 00000.png,
00001.png, ... (zero-padded to the width of the largest index, at least 5 digits); a .vkz file made from a
folder keeps its PNGs' names (`vaekit.apps.vkz.with_names`), and decoding it to a folder restores them. The mode of `source` is kept when it fits the values (so a grey image
whose levels are all 0 or 1 stays grey).

Every write is atomic: a file through a temporary file and a rename, a folder written whole into a temporary
sibling folder and renamed into place, so a failure leaves nothing behind, and an existing output is either
replaced whole or left as it was. Reading checks sizes from the headers against the memory budget before any
image is decoded.
"""

from __future__ import annotations

import gzip
import io as _io
import os
import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import limits
from ..errors import ConfigError, DataError

FORMS = ("npy", "npz", "idx", "png-folder")
PNG_MODES = ("L", "1")  # grey 8-bit and binary
# numpy dtype -> IDX type byte (booleans are written as unsigned bytes)
IDX_TYPES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
_IDX_NAME = re.compile(r"(idx\d*-ubyte|\.idx\d*)(\.gz)?$", re.IGNORECASE)
MIN_NAME_DIGITS = 5



@dataclass(frozen=True)
class ImageSource:
    """Where images came from: the form ("npy", "npz", "idx" or "png-folder") and, for a PNG folder, the file
    names in the order of the images and their mode ("L" or "1")."""

    form: str
    names: tuple[str, ...] = ()
    mode: str | None = None


def output_form(path: str | Path) -> str:
    """The form `write_images` writes at `path`; a one-line ConfigError for a path of no supported form."""
    name = Path(path).name
    if os.fspath(path).endswith(("/", os.sep)) or Path(path).is_dir():
        return "png-folder"
    if _IDX_NAME.search(name):
        return "idx"
    suffix = Path(path).suffix.lower()
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    if not suffix:
        return "png-folder"
    raise ConfigError(f"unsupported output type {Path(path).suffix!r} for --out; use .npy, .npz, an IDX name "
                      "(x-idx3-ubyte, x.idx) or a folder of PNGs (a path with no suffix or ending in '/')")


def _idx_magic(path: Path) -> bool:
    """True when the file (plain or gzipped) starts like an IDX file: 0x00 0x00, a known type byte, 1..4 dims."""
    from ..data.mnist import IDX_DTYPES

    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                head = f.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in IDX_DTYPES and 1 <= head[3] <= 4


def input_form(path: str | Path) -> str:
    """The form of an existing input; a DataError when it does not exist or is of no supported form."""
    path = Path(path)
    if path.is_dir():
        return "png-folder"
    if not path.exists():
        raise DataError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    if _IDX_NAME.search(path.name) or _idx_magic(path):
        return "idx"
    raise DataError(f"{path}: unsupported input (expected a .npy or .npz array, an IDX file or a folder of PNGs)")


# --- reading ----------------------------------------------------------------------------------------------------


def _read_npz(path: Path) -> np.ndarray:
    from ..data.common import load_npz

    arrays = load_npz(path)
    if "x" in arrays or len(arrays) == 1:
        return arrays["x"] if "x" in arrays else next(iter(arrays.values()))
    raise DataError(f"{path} holds several arrays ({', '.join(arrays) or 'none'}); name the images 'x'")


def png_files(folder: Path) -> list[Path]:
    """The PNG files directly in `folder` (hidden ones skipped), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")
                   and p.is_file()), key=lambda p: p.name)


def _read_png_folder(folder: Path) -> tuple[np.ndarray, ImageSource]:
    from ..data.common import image_header, open_image

    files = png_files(folder)
    if not files:
        raise DataError(f"{folder}: no PNG images in this folder (subfolders are not read)")
    # Headers first (nothing decoded): odd sizes or modes, or too many pixels, are errors before any decoding.
    size = mode = None
    for p in files:
        width, height, m = image_header(p)
        if m not in PNG_MODES:
            raise DataError(f"{p}: PNG mode {m!r} is not supported; use grey 8-bit ('L') or binary ('1') images")
        if size is None:
            size, mode = (width, height), m
        elif (width, height) != size:
            raise DataError(f"{folder}: images must all have the same size; {p.name} is {width}x{height} but "
                            f"{files[0].name} is {size[0]}x{size[1]}")
        elif m != mode:
            raise DataError(f"{folder}: images must all have the same mode; {p.name} is {m!r} but "
                            f"{files[0].name} is {mode!r}")
    n, (width, height) = len(files), size
    limits.check_allocation(2 * n * width * height, f"reading {n:,} images of {width}x{height} pixels from "
                                                    f"{folder}", error=DataError)  # one byte each, then stacked
    dtype = bool if mode == "1" else np.uint8
    x = np.empty((n, height, width), dtype=dtype)
    for i, p in enumerate(files):
        try:
            with open_image(p) as im:
                if im.mode != mode or im.size != size:
                    raise DataError(f"{p}: changed while being read")
                x[i] = np.asarray(im, dtype=dtype)
        except (OSError, ValueError, SyntaxError) as e:  # PIL: SyntaxError for a broken PNG chunk
            raise DataError(f"{p}: cannot read image ({e})") from None
    return x, ImageSource("png-folder", tuple(p.name for p in files), mode)


def read_images(path: str | Path) -> tuple[np.ndarray, ImageSource]:
    """The images at `path` (a .npy or .npz file, an IDX file or a folder of PNGs) and where they came from;
    every reader checks its headers against the file and the memory budget before it allocates."""
    from ..data.common import load_npy
    from ..data.mnist import read_idx

    path = Path(path)
    form = input_form(path)
    if form == "png-folder":
        return _read_png_folder(path)
    if form == "npy":
        return load_npy(path), ImageSource("npy")
    if form == "npz":
        return _read_npz(path), ImageSource("npz")
    return read_idx(path), ImageSource("idx")


# --- writing ----------------------------------------------------------------------------------------------------


def check_writable(path: str | Path, shape: tuple[int, ...], dtype: np.dtype) -> str:
    """The form of `path`, after checking that images of `shape` and `dtype` can be written there (a DataError
    when not, before any work: IDX takes the dtypes of IDX_TYPES, a PNG folder grey images of bytes or floats)."""
    form = output_form(path)
    dtype = np.dtype(dtype)
    if form == "idx":
        if dtype != np.bool_ and dtype.newbyteorder("=") not in IDX_TYPES:
            raise DataError(f"IDX files hold uint8, int8, int16, int32, float32 or float64 values, not {dtype}; "
                            "write a .npy file instead")
        if not 1 <= len(shape) <= 255 or any(s >= 2**32 for s in shape):
            raise DataError(f"an IDX file cannot hold an array of shape {tuple(shape)}")
    elif form == "png-folder":
        if not (len(shape) == 3 or (len(shape) == 4 and shape[1] == 1)) or shape[0] == 0:
            raise DataError(f"a folder of PNGs holds grey images (N, H, W) or (N, 1, H, W), not shape "
                            f"{tuple(shape)}; write a .npy file instead")
        if dtype.kind not in "biuf":
            raise DataError(f"cannot write {dtype} values as PNG images")
    return form


def _folder_of(path: str | Path) -> Path:
    return Path(os.fspath(path).rstrip("/" + os.sep) or os.sep)


def check_target(path: str | Path, force: bool = False) -> str:
    """The form of output `path`, after checking that it may be written: an existing file only with `force`; a
    folder of PNGs when it does not exist or is empty, or with `force` when it holds PNG files alone (nothing
    else the user has is ever removed). A one-line VaekitError otherwise."""
    from ..core.outputs import refuse_nonempty
    from ..errors import VaekitError

    form = output_form(path)
    if form != "png-folder":
        if Path(path).is_dir():
            raise DataError(f"{path} is a folder; choose a file name for --out")
        if Path(path).exists() and not force:
            raise VaekitError(f"{path} already exists; choose another --out or pass --force to overwrite it")
        return form
    folder = _folder_of(path)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file; a folder of PNGs cannot replace it (choose another --out)")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            refuse_nonempty(folder, "choose another --out or pass --force to replace it")
        others = [p.name for p in folder.iterdir() if not (p.is_file() and p.suffix.lower() == ".png")]
        if others:
            raise DataError(f"{folder} holds other things than PNG files ({others[0]}, ...); it is replaced only "
                            "when it holds PNGs alone: choose another --out")
    return form


def _png_pictures(x: np.ndarray, mode: str | None) -> tuple[np.ndarray, str]:
    """(N, H, W) uint8 (mode "L", levels 0..255) or bool (mode "1") pixels of images `x`, and the mode."""
    x = x.reshape(x.shape[0], *x.shape[-2:])
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError("float images are written as PNGs only with values in [0, 1]; write a .npy file to "
                            f"keep values {np.nanmin(x):g}..{np.nanmax(x):g}")
        return np.rint(x.astype(np.float64) * 255).astype(np.uint8), "L"
    if x.dtype.kind == "b":
        return x, "1"
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"integer images are written as PNGs only with grey levels 0..255, found "
                        f"{x.min()}..{x.max()}; write a .npy file instead")
    binary = not x.size or x.max() <= 1
    if binary and mode != "L":
        return x.astype(bool), "1"
    return x.astype(np.uint8), "L"


def numbered_names(n: int) -> list[str]:
    """The names a PNG folder of `n` images gets when it has none of its own: 00000.png, 00001.png, ..."""
    digits = max(MIN_NAME_DIGITS, len(str(n - 1)))
    return [f"{i:0{digits}d}.png" for i in range(n)]


def _write_png_folder(folder: Path, x: np.ndarray, source: ImageSource | None) -> None:
    from PIL import Image

    from ..io import new_path_mode

    names = list(source.names) if source and len(source.names) == len(x) else numbered_names(len(x))
    pictures, mode = _png_pictures(x, source.mode if source else None)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    old = None
    try:
        os.chmod(tmp, new_path_mode(0o777))  # mkdtemp makes 0700 folders
        for name, picture in zip(names, pictures):
            # bool -> mode "1", uint8 -> mode "L"
            Image.fromarray(np.ascontiguousarray(picture)).save(tmp / name, format="PNG")
        if folder.is_dir():
            if any(folder.iterdir()):  # move the old folder aside, put the new one in place, then drop the old
                old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
                os.replace(folder, old / folder.name)
            else:
                folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not folder.exists() and (old / folder.name).exists():
            os.replace(old / folder.name, folder)  # put the old folder back
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _idx_bytes(x: np.ndarray) -> bytes:
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    code = IDX_TYPES[x.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, x.ndim]) + struct.pack(f">{x.ndim}I", *x.shape)
    return header + np.ascontiguousarray(x, dtype=x.dtype.newbyteorder(">")).tobytes()


def write_images(path: str | Path, array: np.ndarray, source: ImageSource | None = None, *,
                 force: bool = False) -> str:
    """Writes images `array` at `path` in the form the path names (see the module docstring) and returns it.

    `source` (from `read_images`) gives a PNG folder its file names and mode. An existing output is replaced
    only with `force` (and a folder only when it holds PNG files alone: `check_target`).
    """
    from ..io import atomic_write_bytes

    x = np.asarray(array)
    check_target(path, force)
    form = check_writable(path, x.shape, x.dtype)
    if form == "png-folder":
        _write_png_folder(_folder_of(path), x, source)
        return form
    if form == "idx":
        data = _idx_bytes(x)
        if Path(path).name.lower().endswith(".gz"):
            data = gzip.compress(data, mtime=0)
    else:
        buffer = _io.BytesIO()
        if form == "npy":
            np.save(buffer, x, allow_pickle=False)
        else:
            np.savez_compressed(buffer, x=x)
        data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return form


__all__ = ["FORMS", "ImageSource", "check_target", "check_writable", "input_form", "numbered_names", "output_form",
           "png_files",
           "read_images", "write_images"]
