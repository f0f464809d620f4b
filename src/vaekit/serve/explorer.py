"""`Explorer`: what the latent-space explorer page asks of a run, as plain methods (the web app is a thin layer).

It loads the run (`vaekit.load`), encodes up to `max_points` examples of one split once (the points of the
scatter plot), and answers: projections of those codes (computed once per method and cached in the run folder,
RUN/explorer/), one point's input and reconstruction, decoding of any code (the sliders), traversals,
interpolations, prior samples (by class for conditional runs), attribute vectors from labels (latent
arithmetic), and for runs that take typed values: their codes, the nearest training examples and samples around
them. How a value is shown (a PNG, or fields of JSON) and what typed input means is the run's modality's
(`vaekit.modalities.modality_of`); this class knows no kind of value.

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

from ..analysis.latents import encode_dataset, subsample_indices
from ..analysis.projection import METHODS as PROJECTION_METHODS
from ..core.atomic import atomic_write_text
from ..core.runtime import to_model
from ..errors import VaekitError
from ..modalities import Modality, modality_of

PROJECTIONS = tuple(m for m in PROJECTION_METHODS if m in ("pca", "tsne", "umap"))
MAX_STEPS = 32  # traversal and interpolation strips
MAX_SAMPLES = 64
MAX_SPAN = 10.0  # traversal: +- this many prior standard deviations at most
MAX_STRENGTH = 10.0
MAX_NEIGHBOURS = 2000  # training examples encoded once, to find those nearest a typed value
CACHE_FOLDER = "explorer"


class RequestError(VaekitError):
    """A request the explorer cannot answer: `status` 400 (bad value) or 404 (no such point)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_int(value, name: str, lo: int, hi: int, text: bool = False) -> int:
    """`value` as an int in [lo, hi], else a RequestError naming `name`. A JSON field must be a number (a string
    such as "5" is refused, not converted); `text=True` for the digits of a URL path."""
    if isinstance(value, str) and not text:
        raise RequestError(f"{name} must be a whole number (a JSON number, not a string), got {value!r}")
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
        if isinstance(value, (bool, str)):  # a JSON field must be a number, not text to convert
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

    def __init__(self, run_dir: str | Path, split: str | None = None, max_points: int = 2000, seed: int = 0,
                 data_root: str | None = None, device: str | torch.device = "cpu") -> None:
        from ..io import load_run
        from ..training.train import load_run_bundle

        self.run_dir = Path(run_dir)
        run = load_run(self.run_dir, device=device)
        self.model, self.config = run.model, run.config
        self.modality: Modality = modality_of(self.model)
        if data_root is not None:  # the run's data set, read from another folder than at training time
            self.config.data.root = data_root
        self.lock = threading.Lock()
        bundle = load_run_bundle(self.config, self.model)
        self.bundle = bundle
        # None: the test split, or the first one of data without one; a split named by the caller must exist
        if split is None:
            split = "test" if "test" in bundle.splits else next(iter(bundle.splits))
        self.split_name = split
        self.split = bundle.split(self.split_name)
        self.seed = seed
        self.rows = subsample_indices(len(self.split), max_points, seed)  # the points: rows of the split
        index = torch.as_tensor(self.rows)
        self.x = self.split.x[index]
        self.y = None if self.split.y is None else self.split.y[index]
        with self.lock:
            self.embedding = encode_dataset(self.model, self.x, self.y)
        self.mean = torch.as_tensor(self.embedding.mean)  # (N, D)
        # the KL of each dimension; a model without one (a VQ-VAE's code vectors) ranks them by the variance of
        # the means instead, and the page says which
        self.score_name = "KL" if self.embedding.kl_per_dim is not None else "var"
        self.kl_per_dim = np.asarray(self.embedding.informativeness(), dtype=float)
        self.order = [int(d) for d in np.argsort(-self.kl_per_dim, kind="stable")]  # most informative first
        self.collapsed = self.embedding.collapsed()  # not active units, as `vaekit eval` counts them
        self._projections: dict[str, dict] = {}
        self._neighbours: tuple[torch.Tensor, torch.Tensor] | None = None

    # --- what the page shows first ----------------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def info(self) -> dict:
        """The run's description for the page: sizes, classes, dimensions ordered by KL (collapsed ones marked)."""
        names = list(self.bundle.class_names or [])
        classes = self.model.num_classes or self.bundle.num_classes
        if classes and len(names) != classes:
            names = [str(c) for c in range(classes)]
        return {
            "run": self.run_dir.name, "data": self.config.data.name, "split": self.split_name,
            "points": len(self.rows), "latent_dim": self.latent_dim, "score_name": self.score_name,
            "text": not self.modality.pictures,  # the page shows values as words (JSON), not as PNG
            "conditional": self.model.conditional, "classes": names, "labels": self.y is not None,
            "event_shape": list(self.model.event_shape), "projections": list(PROJECTIONS),
            "dims": [{"dim": d, "kl": round(float(self.kl_per_dim[d]), 4),
                      "collapsed": bool(self.collapsed[d])} for d in self.order],
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
        with self.lock:
            shown = self.modality.show_examples(self.model, self.x)
        for key in shown[0] if shown else ():  # what the page shows of each point besides its coordinates
            cached[key] = [fields[key] for fields in shown]
        self._projections[method] = cached
        return cached

    def _read_cache(self, path: Path) -> dict | None:
        """A cached projection of exactly these points, else None (a stale or damaged file is recomputed)."""
        try:
            cached = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):  # a damaged cache is recomputed
            return None
        ok = isinstance(cached, dict) and cached.get("rows") == self.rows.tolist() and \
            len(cached.get("x", [])) == len(self.rows) == len(cached.get("y", []))
        return cached if ok else None

    # --- points and codes ------------------------------------------------------------------------------------

    def check_point(self, value, text: bool = False) -> int:
        """A point id (0 .. N-1), or a RequestError 404; `text=True` for an id read from a URL path."""
        try:
            return check_int(value, "point", 0, len(self.rows) - 1, text=text)
        except RequestError as error:
            raise RequestError(str(error), status=404) from None

    def point(self, value) -> dict:
        """One point: its row of the split, label, code (posterior mean) and the fields of JSON the modality
        shows of it and of what its code decodes to (none where the page asks for PNG)."""
        i = self.check_point(value, text=True)
        out = {"point": i, "row": int(self.rows[i]), "z": [round(float(v), 5) for v in self.mean[i]],
               "label": None if self.y is None else int(self.y[i])}
        with self.lock:
            out.update(self.modality.show_examples(self.model, self.x[i : i + 1], self.mean[i : i + 1])[0])
        return out

    def input_png(self, value) -> bytes:
        """One point's example as PNG."""
        self._pictures_only()
        return self.modality.show_example(self.model, self.x[self.check_point(value, text=True)])

    def reconstruction_png(self, value) -> bytes:
        """One point's reconstruction as PNG."""
        self._pictures_only()
        i = self.check_point(value, text=True)
        with self.lock:
            out = self.model.reconstruct(to_model(self.model, self.x[i : i + 1]),
                                         self._labels(self.y[i : i + 1] if self.y is not None else None)).cpu()
        return self.modality.show_example(self.model, out[0])

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

    def _strip_label(self, label) -> int | None:
        """The class a strip decodes by: a checked label, or None where the modality decodes by none (a label
        given there is refused, as on an unconditional run)."""
        if not self.modality.class_labels:
            if label is not None:
                raise RequestError(f"{self.modality.values} decode from the code alone: this run takes no label")
            return None
        return self.check_label(label, required=False)

    def decode(self, z, label=None):
        """The decoded mean of one code as the modality shows it: PNG bytes or JSON."""
        code = self.check_code(z)
        label = self.check_label(label, required=False)
        with self.lock:
            return self.modality.show_decoded(self.model, code, label)

    def traverse(self, dim, z, steps=9, span=3.0, label=None):
        """Dimension `dim` swept over +- `span` prior standard deviations around code `z`: a strip (`_strip`)."""
        d = check_int(dim, "dim", 0, self.latent_dim - 1)
        base = self.check_code(z)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        span = check_float(span, "span", 0.0, MAX_SPAN)
        codes = base.repeat(n, 1)
        codes[:, d] = torch.linspace(-span, span, n)
        return self._strip(codes, label)

    def interpolate(self, a, b, steps=8, method="linear", label=None):
        """Codes from point a to point b (linear or spherical), decoded: a strip."""
        from ..analysis.interpolation import lerp, slerp

        i, j = self.check_point(a), self.check_point(b)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        way = {"linear": lerp, "slerp": slerp}[check_choice(method, "method", ("linear", "slerp"))]
        t = torch.linspace(0, 1, n)
        codes = way(self.mean[i], self.mean[j], t)
        return self._strip(codes, label)

    def sample(self, n=16, label=None, seed=0):
        """`n` prior samples (decoded means), of class `label` for a conditional run: a strip."""
        n = check_int(n, "n", 1, MAX_SAMPLES)
        seed = check_int(seed, "seed", 0, 2**31 - 1)
        checked = self._strip_label(label)
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
        """Decoded means of codes (N, D) side by side as the modality shows them: a PNG strip or JSON."""
        label = self._strip_label(label)
        with self.lock:
            return self.modality.show_strip(self.model, codes, label)

    def _pictures_only(self) -> None:
        try:
            self.modality.check_pictures()
        except VaekitError as error:
            raise RequestError(str(error)) from None

    # --- typed values ----------------------------------------------------------------------------------------

    def _typed(self, value):
        """A value typed on the page, checked by the modality (a RequestError where it takes none)."""
        try:
            return self.modality.check_input(value)
        except VaekitError as error:
            raise RequestError(str(error)) from None

    def explore_input(self, text, n_samples=5, n_nearest=5, seed=0) -> dict:
        """A typed value (`text`, the page's field): its code, reconstruction, the nearest training examples (by
        code) and values decoded from draws of q(z | value)."""
        value = self._typed(text)
        n_samples = check_int(n_samples, "samples", 0, MAX_SAMPLES)
        n_nearest = check_int(n_nearest, "nearest", 0, MAX_SAMPLES)
        seed = check_int(seed, "seed", 0, 2**31 - 1)
        neighbours = self._training_codes()
        with self.lock:
            return self.modality.explore_input(self.model, value, neighbours, n_samples, n_nearest, seed)

    def interpolate_inputs(self, a, b, steps=5, method="linear"):
        """Codes from typed value a to typed value b, decoded: a strip."""
        from ..analysis.interpolation import lerp, slerp

        a, b = self._typed(a), self._typed(b)
        n = check_int(steps, "steps", 2, MAX_STEPS)
        way = {"linear": lerp, "slerp": slerp}[check_choice(method, "method", ("linear", "slerp"))]
        with self.lock:
            means = self.modality.encode_input(self.model, [a, b])
        return self._strip(way(means[0], means[1], torch.linspace(0, 1, n)), None)

    def _training_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (posterior means) and rows of up to MAX_NEIGHBOURS training examples, encoded once."""
        if self._neighbours is None:
            train = self.bundle.split("train")
            rows = torch.as_tensor(subsample_indices(len(train), MAX_NEIGHBOURS, self.seed))
            with self.lock:
                emb = encode_dataset(self.model, train.x[rows])
            self._neighbours = (torch.as_tensor(emb.mean), train.x[rows])
        return self._neighbours
