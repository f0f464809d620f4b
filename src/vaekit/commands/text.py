"""The text branches of `vaekit sample`, `reconstruct`, `eval` and `latent interpolate`: sentences printed and
written to .txt files (vaekit.text.generate does the work)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..modalities import modality_of
from .common import check_index, guard_output, registers_step

TEXT_SUFFIXES = (".txt",)


def text_out(args, run, default: str) -> Path:
    """--out (a .txt file, not overwritten without --force) or RUN/<default>."""
    guard_output(args.out, args.force)
    path = Path(args.out) if args.out else run.path / default
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise ConfigError(f"cannot write {str(path)!r}: a text run writes sentences, use a file ending in .txt")
    return path


def refuse_text_options(args, model) -> None:
    """A ConfigError when sentence options (--strategy, --temperature, ...) meet an image or vector run."""
    given = [flag for flag, value in (("--strategy", args.strategy), ("--temperature", args.temperature),
                                      ("--top-p", args.top_p), ("--beam-size", args.beam_size),
                                      ("--text", getattr(args, "text", None))) if value is not None]
    if given and modality_of(model).name != "text":
        raise ConfigError(f"{', '.join(given)} apply to text runs (a sentence VAE); this run models data of shape "
                          f"{tuple(model.event_shape)}")


def add_decoding_args(p, default_strategy: str) -> None:
    """--strategy, --temperature, --top-p and --beam-size, for text runs."""
    from .common import float_range, int_range

    p.add_argument("--strategy", choices=("greedy", "sample", "beam"),
                   help=f"text runs: how words are chosen (default: {default_strategy})")
    p.add_argument("--temperature", type=float_range(0.0, lo_open=True),
                   help="text runs, --strategy sample: divide the logits by this (default 1)")
    p.add_argument("--top-p", type=float_range(0.0, 1.0, lo_open=True),
                   help="text runs, --strategy sample: sample from the smallest set of words holding this mass")
    p.add_argument("--beam-size", type=int_range(1, 64), help="text runs, --strategy beam: hypotheses (default 5)")


def _decoding(args, default_strategy: str) -> dict:
    strategy = args.strategy or default_strategy
    options = {"strategy": strategy, "beam_size": args.beam_size or 5}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.top_p is not None:
        options["top_p"] = args.top_p
    return options


def write_lines(path: Path, lines: list[str]) -> None:
    from ..io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))


@registers_step("text", "sample")
def sample_text(args, run) -> int:
    """`vaekit sample` of a text run: n sentences from z ~ p(z), printed and written to RUN/samples.txt."""
    from ..text.generate import sample_sentences

    if args.label is not None or args.per_class is not None or args.draw:
        raise ConfigError("--label, --per-class and --draw apply to image and vector runs; a text run takes "
                          "--strategy, --temperature, --top-p and --beam-size")
    out = text_out(args, run, "samples.txt")
    sentences = sample_sentences(run.model, args.n, seed=args.seed, **_decoding(args, "sample"))
    for sentence in sentences:
        print(sentence)
    write_lines(out, sentences)
    print(f"wrote {out}")
    return 0


@registers_step("text", "reconstruct")
def reconstruct_text(args, run, split=None) -> int:
    """`vaekit reconstruct` of a text run: --text sentences (or the split's first n), each with its greedy (or
    beam) reconstruction, printed and written to RUN/reconstructions.txt."""
    from ..text.generate import reconstruct_sentences, to_text

    out = text_out(args, run, "reconstructions.txt")
    if args.strategy == "sample" or args.temperature is not None or args.top_p is not None:
        raise ConfigError("reconstructions decode greedily or by beam search: --strategy greedy or beam")
    sentences = list(args.text) if args.text else to_text(run.model, split.x[: args.n])
    rebuilt = reconstruct_sentences(run.model, sentences, **_decoding(args, "greedy"))
    lines = []
    for original, result in zip(sentences, rebuilt):
        lines += [f"  {original}", f"→ {result}", ""]
    print("\n".join(lines).rstrip())
    write_lines(out, lines)
    print(f"wrote {out}")
    return 0


@registers_step("text", "interpolate")
def interpolate_text(args, run, split) -> int:
    """`vaekit latent interpolate` of a text run: --a and --b are sentences or indices into the split."""
    from ..text.generate import interpolate_sentences, to_text

    if args.grid or args.label is not None:
        raise ConfigError("--grid and --label apply to image runs; a text run interpolates between two sentences "
                          "(--a, --b)")
    out = text_out(args, run, "latent/interpolation.txt")
    ends = []
    for text in (args.a, args.b):
        try:
            index = int(text)
        except ValueError:
            ends.append(text)
            continue
        if not -len(split) <= index < len(split):
            raise ConfigError(f"index {index} is out of range: the {args.split} split has {len(split)} sentences")
        ends.append(to_text(run.model, split.x[index % len(split)][None])[0])
    methods = ("linear", "slerp") if args.method == "both" else (args.method,)
    lines = [f"a: {ends[0]}", f"b: {ends[1]}",
             "(each line decodes the code at t; t = 0.00 and t = 1.00 are the model's reconstructions of a and b)", ""]
    for method in methods:
        path = interpolate_sentences(run.model, ends[0], ends[1], args.steps, method=method)
        lines += [f"# {method}"] + [f"{t:.2f}  {s}" for t, s in zip(_steps(args.steps), path)] + [""]
    print("\n".join(lines).rstrip())
    write_lines(out, lines)
    print(f"wrote {out}")
    return 0


@registers_step("text", "arithmetic")
def text_analogies(args, run, split) -> int:
    """`latent arithmetic --analogy A,B,C` of a text run: mu(a) - mu(b) + mu(c) decoded to a sentence."""
    from ..text.generate import decode_codes, encode_sentences, to_text

    if not args.analogy:
        raise ConfigError("a text run has no labels or attributes to build vectors from: use --analogy A,B,C")
    out = text_out(args, run, "latent/analogy.txt")
    lines = []
    for triple in args.analogy:
        if len(triple) != 3:
            raise ConfigError(f"--analogy takes three indices A,B,C; got {','.join(map(str, triple))}")
        rows = [check_index(i, len(split), args.split) for i in triple]
        sentences = to_text(run.model, split.x[rows])
        mu = encode_sentences(run.model, sentences)
        result = decode_codes(run.model, (mu[0] - mu[1] + mu[2])[None])[0]
        lines += [f"a: {sentences[0]}", f"b: {sentences[1]}", f"c: {sentences[2]}", f"a - b + c: {result}", ""]
    print("\n".join(lines).rstrip())
    write_lines(out, lines)
    print(f"wrote {out}")
    return 0


@registers_step("text", "eval")
def evaluate_text(run, x) -> tuple[dict, list[tuple[str, str]]]:
    """`vaekit eval` of a text run, beyond the likelihood: how well sentences are reconstructed (BLEU, token
    accuracy), as a report entry and printed rows."""
    from ..text.quality import reconstruction_report

    recon = reconstruction_report(run.model, x)
    return {"reconstruction": recon.to_dict()}, recon.rows()


def _steps(n: int) -> list[float]:
    return [i / (n - 1) for i in range(n)]
