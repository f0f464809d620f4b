"""`Explorer`: what the latent-space explorer page asks of a run, as plain methods (the web app is a thin layer).

It loads the run (`vaekit.load`), encodes up to `max_points` examples of one split once (the points of the
scatter plot), and answers: projections of those codes (computed once per method and cached in the run folder,
RUN/explorer/), one point's input and reconstruction, decoding of any code (the sliders), traversals,
interpolations, prior samples (by class for conditional runs), attribute vectors from labels (latent
arithmetic), and for text runs: reconstructions, nearest training sentences and samples around a typed sentence.

Every argument is checked here; a bad one raises `RequestError` with a one-line message (the app answers 4xx).
Model calls hold one lock: torch modules are not meant to run the same forward pass from several threads at once,
and the page's requests are small.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import torch

from ..analysis.latents import COLLAPSED_KL, encode_dataset, subsample_indices
from ..analysis.projection import METHODS as PROJECTION_METHODS
from ..atomic import atomic_write_text
from ..errors import VaekitError
from ..runtime import to_model
from .images import strip_png, to_png

PROJECTIONS = tuple(m for m in PROJECTION_METHODS if m in ("pca", "tsne", "umap"))
MAX_STEPS = 32  # traversal and interpolation strips
MAX_SAMPLES = 64
MAX_SPAN = 10.0  # traversal: +- this many prior standard deviations at most
MAX_STRENGTH = 10.0
MAX_SENTENCE_CHARS = 2_000
CACHE_FOLDER = "explorer"


class RequestError(VaekitError):
    """A request the explorer cannot answer: `status` 400 (bad value) or 404 (no such point)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_int(value, name: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi], else a RequestError naming `name`."""
    try:
        number = int(value) if not isinstance(value, bool) else None
        if number is None or (isinstance(value, float) and value != number) or (isinstance(value, str) and
                                                                                  value.strip() != str(number)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{name} must be a whole number, got {value!r}") from None
    if not lo <= number <= hi:
        raise RequestError(f"{name} must be between {lo} and {hi}, got {number}")
    return number


def check_float(value, name: str, lo: float, hi: float) -> float:
    """`value` as a finite float in [lo, hi], else a RequestError naming `name`."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise RequestError(f"{name} must be a finite number between {lo:g} and {hi:g}, got {value!r}")
    return number


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise RequestError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class Explorer:
    """A run, its encoded points and the answers of the explorer page."""

    def __init__(self, run_dir: str | Path, split: str = "test", max_points: int = 2000, seed: int = 0,
                 data_root: str | None = None, device: str | torch.device = "cpu") -> None:
        from ..io import load_run
        from ..train import load_bundle

        self.run_dir = Path(run_dir)
        run = load_run(self.run_dir, device=device)
        self.model, self.config = run.model, run.config
        if data_root is not None:  # the run's data set, read from another folder than at training time
            self.config.data.root = data_root
        self.lock = threading.Lock()
        bundle = load_bundle(self.config)
        self.bundle = bundle
        self.split_name = split if split in bundle.splits else next(iter(bundle.splits))
        self.split = bundle.split(self.split_name)
        self.seed = seed
        self.rows = subsample_indices(len(self.split), max_points, seed)  # the points: rows of the split
        index = torch.as_tensor(self.rows)
        self.x = self.split.x[index]
        self.y = None if self.split.y is None else self.split.y[index]
        with self.lock:
            self.embedding = encode_dataset(self.model, self.x, self.y)
        self.mean = torch.as_tensor(self.embedding.mean)  # (N, D)
        kl = self.embedding.kl_per_dim if self.embedding.kl_per_dim is not None else np.zeros(self.latent_dim)
        self.kl_per_dim = np.asarray(kl, dtype=float)
        self.order = [int(d) for d in np.argsort(-self.kl_per_dim, kind="stable")]  # most informative first
        self._projections: dict[str, dict] = {}
        self._train_text: tuple | None = None

    # --- what the page shows first ----------------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def is_text(self) -> bool:
        return self.model.is_text

    def info(self) -> dict:
        """The run's description for the page: sizes, classes, dimensions ordered by KL (collapsed ones marked)."""
        names = list(self.bundle.class_names or [])
        classes = self.model.num_classes or self.bundle.num_classes
        if classes and len(names) != classes:
            names = [str(c) for c in range(classes)]
        return {
            "run": self.run_dir.name, "data": self.config.data.name, "split": self.split_name,
            "points": len(self.rows), "latent_dim": self.latent_dim, "text": self.is_text,
            "conditional": self.model.conditional, "classes": names, "labels": self.y is not None,
            "event_shape": list(self.model.event_shape), "projections": list(PROJECTIONS),
            "dims": [{"dim": d, "kl": round(float(self.kl_per_dim[d]), 4),
                      "collapsed": bool(self.kl_per_dim[d] < COLLAPSED_KL)} for d in self.order],
        }

    def projection(self, method: str) -> dict:
        """2-D coordinates of the points by `method`, computed once and cached in RUN/explorer/."""
        method = check_choice(method, "method", PROJECTIONS)
        if method in self._projections:
            return self._projections[method]
        path = self.run_dir / CACHE_FOLDER / f"{self.split_name}-{len(self.rows)}-{self.seed}-{method}.json"
        cached = self._read_cache(path)
        if cached is None:
            from ..analysis.projection import project

            try:
                result = project(self.embedding.mean, 2, method, seed=self.seed)
            except VaekitError as error:  # e.g. umap-learn missing: say so on the page
                raise RequestError(str(error)) from None
            cached = {"method": method, "axes": list(result.axis_names), "rows": self.rows.tolist(),
                      "x": np.round(result.coords[:, 0], 5).tolist(), "y": np.round(result.coords[:, 1], 5).tolist()}
            path.parent.mkdir(exist_ok=True)
            atomic_write_text(path, json.dumps(cached))
        cached = {**cached, "labels": None if self.y is None else self.y.tolist()}
        if self.is_text:
            cached["text"] = self._sentences(self.x)
        self._projections[method] = cached
        return cached

    def _read_cache(self, path: Path) -> dict | None:
        """A cached projection of exactly these points, else None (a stale or damaged file is recomputed)."""
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(cached, dict) and cached.get("rows") == self.rows.tolist() and \
            len(cached.get("x", [])) == len(self.rows) == len(cached.get("y", []))
        return cached if ok else None

    # --- points and codes ------------------------------------------------------------------------------------

    def check_point(self, value) -> int:
        """A point id (0 .. N-1), or a RequestError 404."""
        try:
            return check_int(value, "point", 0, len(self.rows) - 1)
        except RequestError as error:
            raise RequestError(str(error), status=404) from None

    def point(self, value) -> dict:
        """One point: its row of the split, label, code (posterior mean) and, for text, its sentence and greedy
        reconstruction."""
        i = self.check_point(value)
        out = {"point": i, "row": int(self.rows[i]), "z": [round(float(v), 5) for v in self.mean[i]],
               "label": None if self.y is None else int(self.y[i])}
        if self.is_text:
            out["text"] = self._sentences(self.x[i : i + 1])[0]
            out["reconstruction"] = self.decode_text(self.mean[i].tolist())
        return out

    def input_png(self, value) -> bytes:
        self._images_only()
        return to_png(self.x[self.check_point(value)], self.model.event_shape)

    def reconstruction_png(self, value) -> bytes:
        self._images_only()
        i = self.check_point(value)
        with self.lock:
            out = self.model.reconstruct(to_model(self.model, self.x[i : i + 1]),
                                         self._labels(self.y[i : i + 1] if self.y is not None else None)).cpu()
        return to_png(out[0], self.model.event_shape)

    def check_code(self, z) -> torch.Tensor:
        """A code: a list of latent_dim finite numbers, each within +- 100."""
        if not isinstance(z, (list, tuple)) or len(z) != self.latent_dim:
            raise RequestError(f"z must be a list of {self.latent_dim} numbers")
        return torch.tensor([check_float(v, "z entries", -100.0, 100.0) for v in z], dtype=torch.float32)

    def check_label(self, label, required: bool = True) -> int | None:
        """A class for a conditional run (default 0 when not `required`); None for other runs."""
        if not self.model.conditional:
            if label is not None:
                raise RequestError("this run is not conditional: it takes no label")
            return None
        if label is None:
            if required:
                raise RequestError(f"this run is conditional: give a label 0..{self.model.num_classes - 1}")
            return 0
        return check_int(label, "label", 0, self.model.num_classes - 1)

    def _labels(self, y) -> torch.Tensor | None:
        if not self.model.conditional:
            return None
        return torch.as_tensor(y).reshape(-1)

    def _decode(self, z: torch.Tensor, label: int | None) -> torch.Tensor:
        """Decoded means (N, *event) of codes (N, D), one batch."""
        with self.lock:
            return self.model.generate(to_model(self.model, z),
                                       None if label is None else torch.full((z.shape[0],), label)).cpu()

    def decode_png(self, z, label=None) -> bytes:
        """The decoded mean of one code, as PNG."""
        self._images_only()
        code = self.check_code(z)
        return to_png(self._decode(code[None], self.check_label(label, required=False))[0], self.model.event_shape)

    def decode(self, z, label=None):
        """The decoded mean of one code: PNG bytes, or {"text": sentence} for a text run."""
        if self.is_text:
            self.check_label(label)
            return {"text": self.decode_text(z)}
        return self.decode_png(z, label)

    def traverse(self, dim, z, steps=9, span=3.0, label=None):
        """Dimension `dim` swept over +- `span` prior standard deviations around code `z`: a PNG strip, or the
        sentences of a text run."""
        d = check_int(dim, "dim", 0, self.latent_dim - 1)
        base = self.check_code(z)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        span = check_float(span, "span", 0.0, MAX_SPAN)
        codes = base.repeat(n, 1)
        codes[:, d] = torch.linspace(-span, span, n)
        return self._strip(codes, label)

    def interpolate(self, a, b, steps=8, method="linear", label=None):
        """Codes from point a to point b (linear or spherical), decoded: a PNG strip or sentences."""
        from ..analysis.interpolation import lerp, slerp

        i, j = self.check_point(a), self.check_point(b)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        way = {"linear": lerp, "slerp": slerp}[check_choice(method, "method", ("linear", "slerp"))]
        t = torch.linspace(0, 1, n)
        codes = way(self.mean[i], self.mean[j], t)
        return self._strip(codes, label)

    def sample(self, n=16, label=None, seed=0):
        """`n` prior samples (decoded means), of class `label` for a conditional run: a PNG strip or sentences."""
        n = check_int(n, "n", 1, MAX_SAMPLES)
        seed = check_int(seed, "seed", 0, 2**31 - 1)
        checked = None if self.is_text else self.check_label(label, required=False)
        labels = None if checked is None else torch.full((n,), int(checked))
        with self.lock, torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)  # the page's seed, without touching the process's random state
            # z ~ p(z), or p(z|y) of the requested class where the prior depends on the label
            codes = self.model.prior_codes(n, labels).reshape(n, self.latent_dim)
        return self._strip(codes, label)

    def arithmetic(self, point, target, strength=1.0, steps=5, label=None):
        """Latent arithmetic with an attribute vector from labels: mean code of class `target` minus the mean
        code of the other classes, added to point's code at strengths 0 .. `strength` (a strip)."""
        from ..analysis.arithmetic import label_vector

        if self.y is None:
            raise RequestError("this run's data have no labels, so there are no attribute vectors")
        i = self.check_point(point)
        classes = int(self.y.max()) + 1
        c = check_int(target, "target", 0, classes - 1)
        strength = check_float(strength, "strength", -MAX_STRENGTH, MAX_STRENGTH)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        try:
            vector = label_vector(self.embedding.mean, self.y.numpy(), c)
        except VaekitError as error:
            raise RequestError(str(error)) from None
        v = torch.as_tensor(vector.vector, dtype=torch.float32)
        codes = self.mean[i][None] + torch.linspace(0, strength, n)[:, None] * v[None]
        if label is None and self.model.conditional:  # the point's own class
            label = int(self.y[i])
        return self._strip(codes, label)

    def _strip(self, codes: torch.Tensor, label):
        if self.is_text:
            return {"sentences": self._decode_sentences(codes)}
        label = self.check_label(label, required=False)
        return strip_png(self._decode(codes, label), self.model.event_shape)

    def _images_only(self) -> None:
        if self.is_text:
            raise RequestError("this is a text run: it decodes to sentences, not images")

    # --- text ------------------------------------------------------------------------------------------------

    def _sentences(self, ids: torch.Tensor) -> list[str]:
        from ..text.generate import to_text

        return to_text(self.model, ids)

    def decode_text(self, z) -> str:
        """The greedy sentence of one code."""
        code = z if torch.is_tensor(z) else self.check_code(z)
        return self._decode_sentences(code.reshape(1, -1))[0]

    def _decode_sentences(self, codes: torch.Tensor) -> list[str]:
        """Greedy sentences of codes (N, D), one batch."""
        from ..text.generate import decode_codes

        with self.lock:
            return decode_codes(self.model, codes)

    def check_sentence(self, text) -> str:
        if not self.is_text:
            raise RequestError("this run is not a text run")
        if not isinstance(text, str) or not text.strip():
            raise RequestError("give a sentence (non-empty text)")
        if len(text) > MAX_SENTENCE_CHARS:
            raise RequestError(f"a sentence may have at most {MAX_SENTENCE_CHARS} characters, got {len(text)}")
        return text

    def _encode_sentences(self, sentences: list[str]):
        """q(z | x) of typed sentences (unknown words become <unk>)."""
        from ..text.generate import to_ids

        with self.lock, torch.no_grad():
            return self.model.encode(to_ids(self.model, sentences, warn=False))

    def explore_sentence(self, text, n_samples=5, n_nearest=5, seed=0) -> dict:
        """A typed sentence: its code, greedy reconstruction, the nearest training sentences (by code) and
        sentences decoded from draws of q(z | sentence)."""
        text = self.check_sentence(text)
        n_samples = check_int(n_samples, "samples", 0, MAX_SAMPLES)
        n_nearest = check_int(n_nearest, "nearest", 0, MAX_SAMPLES)
        seed = check_int(seed, "seed", 0, 2**31 - 1)
        qz = self._encode_sentences([text])
        mu, sigma = qz.base_dist.loc[0].cpu(), qz.base_dist.scale[0].cpu()  # beside the codes kept on the CPU
        train_codes, train_text = self._training_sentences()
        distance = (train_codes - mu[None]).pow(2).sum(1)
        nearest = torch.argsort(distance)[:n_nearest].tolist()
        eps = torch.randn((n_samples, self.latent_dim), generator=torch.Generator().manual_seed(seed))
        return {"z": [round(float(v), 5) for v in mu], "reconstruction": self.decode_text(mu),
                "nearest": [train_text[k] for k in nearest],
                "samples": self._decode_sentences(mu[None] + sigma[None] * eps) if n_samples else []}

    def interpolate_sentences(self, a, b, steps=5, method="linear") -> dict:
        """Sentences decoded along the way from typed sentence a to typed sentence b."""
        from ..analysis.interpolation import lerp, slerp

        a, b = self.check_sentence(a), self.check_sentence(b)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        way = {"linear": lerp, "slerp": slerp}[check_choice(method, "method", ("linear", "slerp"))]
        means = self._encode_sentences([a, b]).base_dist.loc.cpu()
        return {"sentences": self._decode_sentences(way(means[0], means[1], torch.linspace(0, 1, n)))}

    def _training_sentences(self) -> tuple[torch.Tensor, list[str]]:
        """Codes (posterior means) and texts of up to 2,000 training sentences, encoded once."""
        if self._train_text is None:
            train = self.bundle.split("train")
            rows = torch.as_tensor(subsample_indices(len(train), 2000, self.seed))
            with self.lock:
                emb = encode_dataset(self.model, train.x[rows])
            self._train_text = (torch.as_tensor(emb.mean), self._sentences(train.x[rows]))
        return self._train_text
