"""`vaekit export`: a run's encoder and decoder as ONNX or TorchScript files, for use without vaekit.

    vaekit export RUN --out DIR                       DIR/encoder.onnx, DIR/decoder.onnx, DIR/export.json
    vaekit export RUN --format torchscript --out DIR  DIR/encoder.pt, DIR/decoder.pt (torch.jit.load), export.json

A non-empty --out is refused, unless --force and it holds only an earlier export's files (which are replaced);
nothing is written when anything fails. What cannot be exported is refused in one line (see vaekit.export).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .common import add_device_arg, class_names_of, load_run_of, output_path, refuse_nonempty

FORMAT_NAMES = ("onnx", "torchscript")


def register(sub) -> None:
    """Adds `export`."""
    p = sub.add_parser("export", help="write the encoder and decoder as ONNX or TorchScript files for deployment")
    p.set_defaults(func=cmd_export)
    p.add_argument("run", help="run folder written by `vaekit train`")
    p.add_argument("--format", choices=FORMAT_NAMES, default="onnx",
                   help="onnx (run by onnxruntime; needs pip install \"vaekit[export]\") or torchscript "
                        "(torch.jit.load); default onnx")
    p.add_argument("--out", type=output_path, required=True, help="folder to write (new or empty)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier export in --out (a folder holding other files is still refused)")
    add_device_arg(p)  # where the model is traced and checked (default cpu: files that run anywhere)


def export_files() -> set[str]:
    """The names of the files an export writes, in any format."""
    from ..export import FORMATS, MANIFEST_FILE

    return {MANIFEST_FILE} | {f"{what}{fmt.suffix}" for fmt in FORMATS.values() for what in ("encoder", "decoder")}


def check_out(out: Path, force: bool) -> None:
    """Refuses an --out that holds anything, unless --force and it holds an earlier export's files alone."""
    if not force or not out.is_dir():
        refuse_nonempty(out, "choose another --out, or pass --force to replace an earlier export there")
        return
    others = sorted(p.name for p in out.iterdir() if not (p.is_file() and p.name in export_files()))
    if others:
        raise CheckpointError(f"{str(out)!r} holds other files than an export ({others[0]}, ...); --force replaces "
                              "only an earlier export: choose another --out")


def cmd_export(args) -> int:
    from ..export import export_model

    out = Path(args.out)
    check_out(out, args.force)
    run = load_run_of(args)
    names = class_names_of(run) if run.model.conditional else None
    stale = [p for p in out.iterdir() if p.is_file()] if out.is_dir() else []  # an earlier export (--force)
    written = export_model(run.model, out, args.format, config=run.config.model, class_names=names)
    for path in stale:
        if path not in written:
            path.unlink()  # the other format's graph files, which the new export.json no longer describes
    print(f"{run.path} exported as {args.format}:")
    for path in written:
        print(f"wrote {path}")
    return 0
