"""`vaekit compress` / `vaekit decompress`: images to a .vkz file with a trained model and back (vaekit.apps.compress).

    vaekit compress RUN images.npy --out images.vkz           # lossless (BB-ANS): bit-exact
    vaekit compress RUN digits/ --out digits.vkz --lossy --rate 20   # lossy: about 20 bytes per image
    vaekit compress RUN t10k-images-idx3-ubyte.gz --out t.vkz --lossy --step 0.05
    vaekit decompress RUN images.vkz --out restored.npy       # .npy, .npz, x-idx3-ubyte / x.idx, or folder/

Inputs (`vaekit.apps.image_files`): a .npy array, a .npz file's array 'x' (or its only array), an IDX file (plain
or .gz) or a folder of grey ("L") or binary ("1") PNGs. The output of `decompress` takes the form its --out
names: .npy / .npz (array 'x'), an IDX name (`*-idx3-ubyte`, `*.idx`; `.gz` to gzip it) or a folder (a path with
no suffix or ending in '/') of PNGs 00000.png, 00001.png, ... (a .vkz file keeps the images' shape and dtype, not
the names of the PNGs they came from). Lossless round trips are bit-exact in every form: the same values, shape
and dtype; the same pixels and PNG mode.

Lossless coding needs a model whose likelihood has discrete levels: bernoulli (binary images) or
discretized-logistic (8-bit grey levels); lossy coding (--lossy: quantised latents) works with any likelihood.
Both need the normal prior; a VQ-VAE (model kind vqvae) codes its code indices under its learned prior, lossy
only, at the rate the model sets (no --rate or --step). An existing --out is refused unless --force (a folder is replaced only when it holds
PNG files alone), and nothing is written when anything fails.
"""

from __future__ import annotations

from pathlib import Path

from ..core.outputs import check_output_suffix
from ..errors import ConfigError, DataError
from .common import add_device_arg, float_range, guard_output, load_run_of, output_path, positive_float


def _step(text: str) -> float:
    """An argparse type: a lossy quantisation step within the codec's range (MIN_STEP..MAX_STEP of
    vaekit.apps.lossy, read only when --step is given: the codec's imports stay out of the parser)."""
    from ..apps.lossy import MAX_STEP, MIN_STEP

    return float_range(MIN_STEP, MAX_STEP)(text)


_step.__name__ = "float"


def register(sub) -> None:
    """Adds `compress` and `decompress`."""
    p = sub.add_parser("compress", help="compress images with a trained model: lossless (BB-ANS, bit-exact) or "
                                        "--lossy (quantised latents, or a VQ-VAE's codes)")
    p.set_defaults(func=cmd_compress)
    p.add_argument("run", help="run folder of a model with the normal prior; lossless coding needs the bernoulli "
                               "(binary images) or discretized-logistic (8-bit images) likelihood, --lossy any; "
                               "or of a VQ-VAE (--lossy: its code indices under its prior)")
    p.add_argument("input", help="the images: a .npy or .npz array (N, H, W) or (N, C, H, W), an IDX file (plain "
                                 "or .gz) or a folder of grey ('L') or binary ('1') PNGs")
    p.add_argument("--out", type=output_path, required=True, help="the .vkz file to write")
    p.add_argument("--lossy", action="store_true", help="lossy coding of the quantised posterior means (any "
                                                        "likelihood); the default is lossless")
    p.add_argument("--rate", type=positive_float, metavar="BYTES",
                   help="with --lossy: the target size in bytes per image (the step is chosen to meet it)")
    p.add_argument("--step", type=_step, metavar="S",
                   help="with --lossy: the quantisation step in prior standard deviations (default 0.1; smaller "
                        "keeps more detail and costs more bytes)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    add_device_arg(p)

    p = sub.add_parser("decompress", help="restore the images of a .vkz file (bit-exact when it is lossless)")
    p.set_defaults(func=cmd_decompress)
    p.add_argument("run", help="the run folder whose model wrote the file")
    p.add_argument("input", help="the .vkz file")
    p.add_argument("--out", type=output_path, required=True,
                   help="where to write the images: .npy, .npz (array 'x'), an IDX name (x-idx3-ubyte, x.idx, .gz "
                        "to gzip), or a folder of PNGs (no suffix, or ending in '/'; named 00000.png, ...)")
    p.add_argument("--force", action="store_true",
                   help="overwrite --out if it exists (a folder only when it holds PNG files alone)")
    add_device_arg(p)


def _check_lossy_flags(args) -> None:
    if not args.lossy:
        for flag in ("rate", "step"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag} applies to lossy compression only; add --lossy")
    elif args.rate is not None and args.step is not None:
        raise ConfigError("give --rate or --step, not both (the rate chooses the step)")


def cmd_compress(args) -> int:
    from ..apps import vkz
    from ..apps.compress import compress
    from ..apps.image_files import numbered_names, read_images
    from ..io import atomic_write_bytes

    _check_lossy_flags(args)
    check_output_suffix(args.out, (".vkz",))
    guard_output(args.out, args.force)
    x, source = read_images(args.input)
    run = load_run_of(args)
    blob = compress(run.model, x, lossy=args.lossy, step=args.step, rate=args.rate)
    if source.form == "png-folder" and list(source.names) != numbered_names(len(source.names)):
        blob = vkz.with_names(blob, source.names)  # decoding to a folder gives each image its name back
    atomic_write_bytes(args.out, blob)
    header, _ = vkz.read(blob)
    values = max(x.size, 1)
    summary = f"wrote {args.out}: {len(blob):,} bytes for {x.size:,} values ({8 * len(blob) / values:.4f} bits/value"
    if args.lossy:
        count = int(header["count"])
        how = f"with step {float(header['step']):.4g}" if header["codec"] == "latent" else "(VQ-VAE codes)"
        summary += f", {len(blob) / count:,.1f} bytes per image for {count:,} images, lossy {how}"
    print(summary + ")")
    return 0


def cmd_decompress(args) -> int:
    import numpy as np

    from ..apps.compress import CompressionError, decompress, read_header
    from ..apps.image_files import ImageSource, check_target, check_writable, write_images
    from ..apps.vkz import names_of

    check_target(args.out, args.force)  # the form --out names, and whether it may be written
    if not Path(args.input).is_file():
        raise DataError(f"{args.input} does not exist")
    data = Path(args.input).read_bytes()
    header, _ = read_header(data)  # a damaged or foreign file is refused before the model is loaded
    try:
        shape, dtype = tuple(int(s) for s in header["input_shape"]), np.dtype(header["dtype"])
    except (TypeError, ValueError):
        raise CompressionError("the .vkz header is damaged (its shape or dtype)") from None
    check_writable(args.out, shape, dtype)  # before decoding: an output form that cannot hold these images
    names = names_of(header)  # the PNG names it was made from, checked (plain names only)
    run = load_run_of(args)
    x = decompress(run.model, data)
    form = write_images(args.out, x, None if names is None else ImageSource("png-folder", tuple(names)),
                        force=args.force)
    lossy = " (lossy: the decoder's reconstructions)" if header["codec"] == "latent" else ""
    what = "PNG images" if form == "png-folder" else f"images, {x.dtype} {'x'.join(map(str, x.shape))}"
    print(f"wrote {args.out}: {x.shape[0]:,} {what}{lossy}")
    return 0
