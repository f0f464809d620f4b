"""`vaekit compress` / `vaekit decompress`: lossless BB-ANS files with a trained model (vaekit.apps.compress).

    vaekit compress RUN images.npy --out images.vkz          # .npy, or .npz (its one array, or its array 'x')
    vaekit decompress RUN images.vkz --out restored.npy      # bit-exact: the same values, shape and dtype
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..outputs import check_output_suffix
from .common import guard_output

ARRAY_SUFFIXES = (".npy", ".npz")


def register(sub) -> None:
    """Adds `compress` and `decompress`."""
    p = sub.add_parser("compress", help="losslessly compress binary images with a trained model (BB-ANS)")
    p.set_defaults(func=cmd_compress)
    p.add_argument("run", help="run folder of a model with the bernoulli likelihood and the normal prior")
    p.add_argument("input", help=".npy or .npz array of images (N, H, W) or (N, C, H, W), values 0/1")
    p.add_argument("--out", required=True, help="the .vkz file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    p = sub.add_parser("decompress", help="restore the images of a .vkz file, bit-exact")
    p.set_defaults(func=cmd_decompress)
    p.add_argument("run", help="the run folder whose model wrote the file")
    p.add_argument("input", help="the .vkz file")
    p.add_argument("--out", required=True, help=".npy or .npz file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _read_array(path: str) -> np.ndarray:
    """The images of a .npy file, or of a .npz file's one array (or its array 'x'), read by the data loaders'
    readers (headers checked against the file and the memory budget first)."""
    from ..data.common import load_npy, load_npz

    suffix = check_output_suffix(path, ARRAY_SUFFIXES, flag="the input")
    if not Path(path).is_file():
        raise DataError(f"{path} does not exist")
    if suffix == ".npy":
        return load_npy(Path(path))
    arrays = load_npz(Path(path))
    if "x" in arrays or len(arrays) == 1:
        return arrays["x"] if "x" in arrays else next(iter(arrays.values()))
    raise DataError(f"{path} holds several arrays ({', '.join(arrays)}); name the images 'x'")


def cmd_compress(args) -> int:
    from ..apps.compress import compress
    from ..io import atomic_write_bytes, load_run

    check_output_suffix(args.out, (".vkz",))
    guard_output(args.out, args.force)
    x = _read_array(args.input)
    run = load_run(args.run)
    blob = compress(run.model, x)
    atomic_write_bytes(args.out, blob)
    print(f"wrote {args.out}: {len(blob):,} bytes for {x.size:,} values ({8 * len(blob) / x.size:.4f} bits/value)")
    return 0


def cmd_decompress(args) -> int:
    from ..apps.compress import decompress
    from ..io import atomic_write_bytes, load_run

    suffix = check_output_suffix(args.out, ARRAY_SUFFIXES)
    guard_output(args.out, args.force)
    if not Path(args.input).is_file():
        raise DataError(f"{args.input} does not exist")
    run = load_run(args.run)
    x = decompress(run.model, Path(args.input).read_bytes())
    buffer = _io.BytesIO()
    np.save(buffer, x, allow_pickle=False) if suffix == ".npy" else np.savez_compressed(buffer, x=x)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out}: {x.shape[0]:,} images")
    return 0
