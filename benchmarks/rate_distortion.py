"""Benchmark: lossy compression with a VAE's quantised latents against JPEG and WebP (Pillow), rate-distortion
curves on the MNIST and Fashion-MNIST test sets (10,000 images each), all in one run.

    VAEKIT_DATA=../shared/data python benchmarks/rate_distortion.py --out runs/rd        # trains what is missing
    # or one process per data set, then one figure of both:
    ... rate_distortion.py --data mnist --save rd-mnist.json --figure rd-mnist.png  (and fashion-mnist)
    ... rate_distortion.py --plot-only rd-mnist.json rd-fashion-mnist.json

For each data set a VAE is trained on its training split (unless OUT/<data> holds one): the conv network
(channels [32, 64], dense 512), 64 latent dimensions, the gaussian-learned likelihood (its mean is sharp),
beta 0.1, KL warm-up, cosine learning rate (RD_MODEL). So are VQ-VAEs (OUT/<data>-vq-<setting>: VQ_MODEL at each
of VQ_SETTINGS), each coded with its code indices under its learned prior; the settings the table quotes are
chosen on VALID_IMAGES validation images.
The whole test set is then coded into one lossy .vkz per quantisation step (`vaekit.compress(..., lossy=True)`),
so its header (about 700 bytes with the fitted latent density) is spread over 10,000 images; the "payload" rate
leaves the header out, as the stripped JPEG/WebP rates leave theirs out. JPEG and WebP code every image as its
own file (benchmarks/image_codecs.py): whole files, and stripped of the bytes that are the same for every
28x28 image at one quality. Distortion: mean over images of the per-image PSNR (peak 255) of the 8-bit images
(the VAE's decoded means rounded to 8 bits). One figure: docs/figures/rate_distortion.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import vaekit
from vaekit.apps.compress import compress, decompress
from vaekit.apps.vkz import read as read_vkz

sys.path.insert(0, str(Path(__file__).parent))
from image_codecs import codec_curve, psnr  # noqa: E402

STEPS = (2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01)
QUALITIES = (1, 5, 10, 20, 30, 50, 75, 90)
BUDGET = 100  # bytes per image at which the issue compares the codecs
# The VAE: chosen on MNIST's validation split (PSNR of the unquantised reconstructions of 2,000 validation
# images): this conv network reached 25.1 dB after 10 epochs, an MLP [512, 512] 22.2 dB after 15 (with
# beta 0.1 or 0.01 alike) and 20.9 dB with beta 1 and 32 latent dimensions. beta < 1 is the rate-distortion
# trade-off of a beta-VAE: more bits in the latents, sharper reconstructions.
RD_MODEL = ("model.latent_dim=64", "model.network=conv", "model.network.channels=[32,64]", "model.network.dense=512",
            "model.likelihood=gaussian-learned", "objective.beta=0.1", "objective.warmup_epochs=5",
            "train.lr_schedule=cosine")


# VQ-VAEs (model.kind vqvae): the same likelihood as the Gaussian-latent VAE, the kind's defaults otherwise (K = 512
# codes of 16 entries, a 7x7 code grid), at several code grids and codebook sizes; 6 epochs each. Each is one point
# of rate and distortion: its rate is what the learned prior gives, with no quantisation step to vary.
VQ_MODEL = ("model.kind=vqvae", "model.likelihood=gaussian-learned")
VQ_EPOCHS = 6
VQ_SETTINGS = {"g7-k512": (), "g4-k512": ("model.kind.grid=4",), "g7-k2048": ("model.kind.codebook_size=2048",)}
VALID_IMAGES = 2000  # validation images that choose the VQ setting reported in the table
# The Gaussian-latent codec's best point within BUDGET bytes (whole files) measured by this script with RD_MODEL
# on the same test sets (docs/benchmarks.md, "lossy latent codec against JPEG and WebP"): drawn as a reference
# when a run leaves the Gaussian VAE out (--no-gaussian), labelled as such.
GAUSSIAN_REFERENCE = {"mnist": (68.7, 25.72), "fashion-mnist": (69.6, 22.57)}


def train(data: str, run: Path, epochs: int, threads: int, model: tuple[str, ...] = RD_MODEL) -> None:
    config = vaekit.build_run_config(None, [f"data.name={data}", *model, f"train.epochs={epochs}",
                                            "train.progress=false", f"train.threads={threads}"])
    started = time.perf_counter()
    vaekit.fit(config, run)
    print(f"trained {run} in {time.perf_counter() - started:.0f} s", flush=True)


def vae_curve(model, images: np.ndarray) -> list[dict]:
    rows = []
    for step in STEPS:
        started = time.perf_counter()
        blob = compress(model, images, lossy=True, step=step)
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        decoded = decompress(model, blob)
        decode_s = time.perf_counter() - started
        _, payload = read_vkz(blob)
        rows.append({"codec": "vae", "step": step, "bytes_per_image": len(blob) / len(images),
                     "stripped_bytes_per_image": 4 * len(payload) / len(images),
                     "psnr": float(np.mean(psnr(images, decoded))), "header_bytes": len(blob) - 4 * len(payload),
                     "encode_ms_per_image": 1e3 * encode_s / len(images),
                     "decode_ms_per_image": 1e3 * decode_s / len(images)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def vq_point(model, images: np.ndarray, setting: str) -> dict:
    """One VQ-VAE's rate and distortion: its codes coded under its prior (`vaekit.apps.vq_codec`)."""
    started = time.perf_counter()
    blob = compress(model, images, lossy=True)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = decompress(model, blob)
    decode_s = time.perf_counter() - started
    _, payload = read_vkz(blob)
    row = {"codec": "vq", "setting": setting, "bytes_per_image": len(blob) / len(images),
           "stripped_bytes_per_image": 4 * len(payload) / len(images), "psnr": float(np.mean(psnr(images, decoded))),
           "header_bytes": len(blob) - 4 * len(payload), "encode_ms_per_image": 1e3 * encode_s / len(images),
           "decode_ms_per_image": 1e3 * decode_s / len(images)}
    print(json.dumps(row), flush=True)
    return row


def eight_bit(x) -> np.ndarray:
    return np.rint(x.numpy()[:, 0] * 255).astype(np.uint8)  # (N, 28, 28) 8-bit


def vq_runs(out: Path, data: str, epochs: int, threads: int, settings: dict = VQ_SETTINGS) -> dict[str, Path]:
    """The VQ-VAE run of every setting (trained when missing)."""
    runs = {}
    for setting, extra in settings.items():
        run = out / f"{data}-vq-{setting}"
        if not (run / "model.safetensors").exists():
            train(data, run, epochs, threads, (*VQ_MODEL, *extra))
        runs[setting] = run
    return runs


def choose_on_validation(runs: dict[str, Path], data: str) -> dict:
    """The VQ settings the table reports, chosen on validation images: the highest PSNR within BUDGET bytes, and
    the fewest bytes at 25 dB or more."""
    images = eight_bit(vaekit.load_data(data).split("valid").x[:VALID_IMAGES])
    rows = [vq_point(vaekit.load(run), images, setting) for setting, run in runs.items()]
    within = [r for r in rows if r["bytes_per_image"] <= BUDGET]
    above = [r for r in rows if r["psnr"] >= 25.0]
    return {"valid_rows": rows,
            "best_psnr_within_budget": max(within, key=lambda r: r["psnr"])["setting"] if within else None,
            "fewest_bytes_at_25db": min(above, key=lambda r: r["bytes_per_image"])["setting"] if above else None}


def best_under(rows: list[dict], key: str, budget: float = BUDGET) -> float | None:
    """The highest PSNR among points whose rate `key` is within the budget (None: no point is)."""
    inside = [r["psnr"] for r in rows if r[key] <= budget]
    return max(inside) if inside else None


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    styles = {"vae": ("C0", "vaekit latent codec"), "jpeg": ("C1", "JPEG"), "webp": ("C2", "WebP"),
              "vq": ("C3", "vaekit VQ-VAE codes")}
    for ax, (data, curves) in zip(axes[0], results.items()):
        for codec, rows in curves.items():
            colour, label = styles[codec]
            if codec == "vq":  # one point per model, labelled with its setting
                for key, marker, kind in (("bytes_per_image", "s", "whole files"),
                                          ("stripped_bytes_per_image", "D", "payload")):
                    ax.plot([r[key] for r in rows], [r["psnr"] for r in rows], marker, color=colour, ms=6,
                            ls="none", alpha=1.0 if kind == "whole files" else 0.6, label=f"{label}, {kind}")
                for r in rows:
                    ax.annotate(r["setting"], (r["bytes_per_image"], r["psnr"]), textcoords="offset points",
                                xytext=(5, -10), fontsize=7, color=colour)
                continue
            ax.plot([r["bytes_per_image"] for r in rows], [r["psnr"] for r in rows], "o-", color=colour,
                    ms=3, label=f"{label}, whole files")
            ax.plot([r["stripped_bytes_per_image"] for r in rows], [r["psnr"] for r in rows], "o--",
                    color=colour, ms=3, alpha=0.7, label=f"{label}, {'payload' if codec == 'vae' else 'stripped'}")
        if "vae" not in curves and data in GAUSSIAN_REFERENCE:
            ax.plot(*GAUSSIAN_REFERENCE[data], "*", color="C0", ms=11,
                    label="vaekit latent codec: best point <= 100 B (earlier run)")
        ax.axvline(BUDGET, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ticks = [t for t in (10, 20, 50, 100, 200, 500, 1000) if t >= ax.get_xlim()[0] and t <= ax.get_xlim()[1]]
        ax.set_xticks(ticks, [str(t) for t in ticks])  # plain numbers, no overlapping minor labels
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bytes per image")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{data} test set (10,000 images)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/rd", help="folder of the runs (trained when missing)")
    parser.add_argument("--data", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (1: robust on shared cores)")
    parser.add_argument("--limit", type=int, default=None, help="test images per data set (default: all)")
    parser.add_argument("--figure", default="docs/figures/rate_distortion.png")
    parser.add_argument("--train-only", action="store_true", help="train the missing runs and stop")
    parser.add_argument("--save", help="also write the results to this JSON file")
    parser.add_argument("--vq-epochs", type=int, default=VQ_EPOCHS)
    parser.add_argument("--vq-settings", nargs="+", choices=list(VQ_SETTINGS), default=list(VQ_SETTINGS),
                        help="the VQ-VAE settings to train and measure")
    parser.add_argument("--no-gaussian", action="store_true",
                        help="leave out the Gaussian-latent VAE (neither trained nor measured)")
    parser.add_argument("--plot-only", nargs="+", metavar="JSON",
                        help="no measuring: plot the results saved by earlier runs (e.g. one per data set)")
    args = parser.parse_args()

    if args.plot_only:
        merged = {}
        for path in args.plot_only:
            merged.update(json.loads(Path(path).read_text())["results"])
        plot(merged, Path(args.figure))
        print(f"wrote {args.figure}")
        return

    settings = {name: VQ_SETTINGS[name] for name in args.vq_settings}
    if args.train_only:
        for data in args.data:
            if not args.no_gaussian and not (Path(args.out) / data / "model.safetensors").exists():
                train(data, Path(args.out) / data, args.epochs, args.threads)
            vq_runs(Path(args.out), data, args.vq_epochs, args.threads, settings)
        return
    results, summary = {}, {}
    for data in args.data:
        run = Path(args.out) / data
        images = eight_bit(vaekit.load_data(data).split("test").x[: args.limit])
        curves = {}
        if not args.no_gaussian:
            if not (run / "model.safetensors").exists():
                train(data, run, args.epochs, args.threads)
            curves["vae"] = vae_curve(vaekit.load(run), images)
        runs = vq_runs(Path(args.out), data, args.vq_epochs, args.threads, settings)
        curves["vq"] = [vq_point(vaekit.load(run), images, setting) for setting, run in runs.items()]
        for codec in ("jpeg", "webp"):
            curves[codec] = codec_curve(images, codec, QUALITIES)
        results[data] = curves
        summary[data] = {f"{codec} {key}": best_under(rows, key) for codec, rows in curves.items()
                         for key in ("bytes_per_image", "stripped_bytes_per_image")}
        chosen = choose_on_validation(runs, data)
        summary[data]["vq chosen on validation"] = chosen
        for what in ("best_psnr_within_budget", "fewest_bytes_at_25db"):
            test_row = next((r for r in curves["vq"] if r["setting"] == chosen[what]), None)
            summary[data][f"vq test point of {what}"] = test_row
    plot(results, Path(args.figure))
    report = json.dumps({"results": results, f"best_psnr_within_{BUDGET}_bytes": summary}, indent=1)
    if args.save:
        Path(args.save).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
