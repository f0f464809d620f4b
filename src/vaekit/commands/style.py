"""`vaekit style`: render the style of some images with other content labels (conditional VAE analogies).

    vaekit style RUN --style 0,5,9 --content 3          styles of test images 0, 5, 9 drawn as class 3
    vaekit style RUN --style 12 --content idx:40        ... as the class of test image 40
    vaekit style RUN --style 12 --content Sneaker,Bag   class names work where the data set has them
    vaekit style RUN --grid                             analogy grid: rows = styles, columns = every class
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, VaekitError
from .common import guard_output, load_with_data, run_args

DEFAULT_STYLES = 8  # with no --style: the first 8 images of the split


def register(sub) -> None:
    """Adds `style`."""
    p = sub.add_parser("style", help="style transfer with a conditional VAE: one image's style, another class")
    p.set_defaults(func=cmd_style)
    run_args(p, "output: .png figure or .npy array (default: RUN/style.png, with --grid RUN/analogies.png)")
    p.add_argument("--style", metavar="IDX[,IDX...]",
                   help=f"indices of the style images in --split (default: the first {DEFAULT_STYLES})")
    p.add_argument("--content", metavar="C[,C...]",
                   help="content classes: a label (7), a class name (Sneaker) or idx:N, the label of image N")
    p.add_argument("--grid", action="store_true", help="analogy grid: every style image in every class")
    p.add_argument("--split", default="test", help="split holding the images (default: test)")
    p.add_argument("--data-root", help="folder holding the data files")


def parse_indices(text: str | None, size: int, what: str = "--style") -> list[int]:
    """'3,10,7' -> [3, 10, 7], each checked against a split of `size` examples."""
    if text is None:
        return list(range(min(DEFAULT_STYLES, size)))
    indices = []
    for token in text.split(","):
        try:
            index = int(token)
        except ValueError:
            raise ConfigError(f"{what} takes image indices like 3 or 0,5,9, got {token!r}") from None
        if not 0 <= index < size:
            raise ConfigError(f"{what} index {index} is outside the split (0..{size - 1})")
        indices.append(index)
    return indices


def parse_content(text: str, labels: torch.Tensor | None, num_classes: int,
                  class_names: tuple[str, ...] | None) -> list[int]:
    """'7', 'Sneaker' or 'idx:N' (comma-separated) -> class labels."""
    names = {name.lower(): i for i, name in enumerate(class_names or ())}
    result = []
    for token in (t.strip() for t in text.split(",")):
        if token.lower().startswith("idx:"):
            size = 0 if labels is None else labels.numel()
            if not token[4:].isdigit() or int(token[4:]) >= size:
                raise ConfigError(f"--content {token!r}: idx:N needs an image index N in 0..{size - 1}")
            result.append(int(labels[int(token[4:])]))
        elif token.lstrip("-").isdigit():
            label = int(token)
            if not 0 <= label < num_classes:
                raise ConfigError(f"label {label} is outside the trained classes 0..{num_classes - 1}")
            result.append(label)
        elif token.lower() in names:
            result.append(names[token.lower()])
        else:
            known = f" or a class name ({', '.join(class_names)})" if class_names else ""
            raise ConfigError(f"--content {token!r} is not a label 0..{num_classes - 1}{known}, nor idx:N")
    return result


def cmd_style(args) -> int:
    from ..apps.style import analogy_grid, analogy_output, require_conditional
    from ..figures.plots import write_output

    guard_output(args.out, args.force)
    if args.out:  # before any work
        from ..core.outputs import check_output_suffix

        check_output_suffix(args.out, (".png", ".npy"))
    if args.grid == (args.content is not None):
        raise VaekitError("give either --content C (a label, a class name or idx:N) or --grid")
    run, data = load_with_data(args)
    require_conditional(run.model)
    split = data.split(args.split)
    if split.y is None:
        raise VaekitError(f"split {args.split!r} of {data.name!r} has no labels; style images need their labels")
    index = parse_indices(args.style, len(split))
    classes = None if args.grid else parse_content(args.content, split.y, run.model.num_classes, data.class_names)
    grid = analogy_grid(run.model, split.x[index], split.y[index], classes)
    names = data.class_names
    rows = [f"#{i} ({names[int(c)] if names else int(c)})" for i, c in zip(index, grid.source_labels)]
    title = "Analogies: each row one style, each column one class" if args.grid else "Style transfer"
    out = Path(args.out or run.path / ("analogies.png" if args.grid else "style.png"))
    write_output(analogy_output(grid, out.suffix, names, row_labels=rows, title=title), out)
    k = grid.classes.numel()
    print(f"styles of {args.split} images {', '.join(rows)} in {k} class{'' if k == 1 else 'es'}")
    print(f"wrote {out}")
    return 0

