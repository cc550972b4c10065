"""The one object that describes a generation.

:class:`GenerationConfig` is shared by the CLI, the app and the saved record (it is
serialised as JSON into every record).  :data:`DEFAULTS` is the single table of
defaults; the CLI builds its flags and help from it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field

from nps.errors import NPSError
from nps.shipped import shipped_weights

log = logging.getLogger(__name__)

CONSTRAINTS = ("ssd", "loc", "ssl")
SSL_MODES = ("reference", "canvas")
SEARCH_MODES = ("exact", "brute")

# encoder="auto" picks, per corpus, the encoder that measured best for the sampler: the
# higher class purity of the 64-image semantic pool (README, "Defaults from evidence";
# `python -m nps encoder-eval`).  SimCLR only where the project ships its weights.
PREFERRED_ENCODER = {"mnist": "simclr"}  # fashion-mnist: pca purer than simclr (76.8% vs 76.1%)


def resolve_encoder(name: str, corpus: str) -> str:
    """The concrete encoder for ``name`` on ``corpus``: ``auto`` becomes the measured best, else pca."""
    if name != "auto":
        return name
    best = PREFERRED_ENCODER.get(corpus, "pca")
    if best == "simclr" and not shipped_weights("simclr", corpus).is_file():
        return "pca"
    return best


@dataclass(frozen=True)
class GenerationConfig:
    """Every parameter of a generation.

    Attributes:
        corpus: corpus name (see :mod:`nps.corpora`).
        subset: stratified train subset size, or None for all.
        n: number of samples.
        seed: RNG seed; sample i uses the stream (seed, i), so records split and merge.
        window: context window w (odd).
        sigma: Gaussian weight std; None means window / 6.4 (Efros & Leung).
        eps: adaptive SSD threshold, keep d <= (1 + eps) * min d + tol.
        tol: absolute tolerance added to the threshold (in [0,1]-intensity SSD units),
            so that a zero minimum keeps every exact match despite rounding.
        max_ssd: optional absolute SSD ceiling (Efros & Leung's delta); where no window
            passes it the pixel falls back to the adaptive rule and is marked relaxed.
        radius: locality radius R, L-infinity, in pixels.
        k: semantic pool size (nearest corpus images to the condition).
        constraints: enabled subset of ("ssd", "loc", "ssl").
        encoder: representation encoder name ("pca", "pixels", "simclr"), or "auto" (the
            default): the measured best for the corpus (:func:`resolve_encoder`), resolved
            when the config is made, so records always name a concrete encoder.
        ssl_mode: "reference" (k-NN of a reference image) or "canvas" (re-embed per shell).
        ssl_eps: if set, the semantic pool is adaptive: images with distance
            <= (1 + ssl_eps) * nearest distance, capped at k.
        reference: fixed reference train id for every sample, or None for random.
        include_reference: let the reference be a candidate source beyond the seed (by default
            it is left out of the candidates in every constraint set).
        label: class-conditional: the semantic pool is all images of this label.
        seed_size: side s of the s x s seed patch copied from the reference.
        batch_size: samples advanced in lockstep.
        device: "cpu" or "cuda".
        search: how steps whose candidates are the whole corpus (no ``ssl``) are searched:
            "brute" (score every window, float32; the default) or "exact" (pruned, :mod:`nps.search`;
            opt-in until its 60k records are shown identical to the dense scan's).
        data_root: extra folder to look for corpus files.
    """

    corpus: str = "mnist"
    subset: int | None = None
    n: int = 64
    seed: int = 0
    window: int = 7
    sigma: float | None = None
    eps: float = 0.1
    tol: float = 1e-6
    max_ssd: float | None = None
    radius: int = 2
    k: int = 64
    constraints: tuple[str, ...] = CONSTRAINTS
    encoder: str = "auto"
    ssl_mode: str = "reference"
    ssl_eps: float | None = None
    reference: int | None = None
    include_reference: bool = False
    label: int | None = None
    seed_size: int = 8
    batch_size: int = 64
    device: str = "cpu"
    search: str = "brute"
    data_root: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Accept "ssd,loc" or any iterable, store a canonical sorted-by-CONSTRAINTS tuple.
        cons = self.constraints
        if isinstance(cons, str):
            cons = tuple(c.strip() for c in cons.split(",") if c.strip())
        if not isinstance(cons, list | tuple) or not all(isinstance(c, str) for c in cons):
            raise NPSError(f"constraints {cons!r} must be a comma list of {', '.join(CONSTRAINTS)}.")
        cons = tuple(cons)
        if not cons:
            # An empty set would search every window of every image with no rule at all.
            raise NPSError("no constraint is switched on; enable at least one of ssd, loc, ssl "
                           "(e.g. --constraints ssd,loc).")
        unknown = [c for c in cons if c not in CONSTRAINTS]
        if unknown:
            raise NPSError(f"unknown constraint '{unknown[0]}'; use a comma list of {', '.join(CONSTRAINTS)} "
                           "(e.g. --constraints ssd,loc).")
        object.__setattr__(self, "constraints", tuple(c for c in CONSTRAINTS if c in cons))
        if not isinstance(self.encoder, str) or not isinstance(self.corpus, str):
            raise NPSError("corpus and encoder must be names (strings).")
        # The name load_corpus reads ("digits " is digits): a record must name what it was made on.
        object.__setattr__(self, "corpus", self.corpus.strip())
        object.__setattr__(self, "encoder", resolve_encoder(self.encoder, self.corpus))

    # ------------------------------------------------------------------ derived
    @property
    def sigma_(self) -> float:
        """The Gaussian std actually used."""
        return float(self.sigma) if self.sigma is not None else self.window / 6.4

    def uses(self, constraint: str) -> bool:
        return constraint in self.constraints

    def replace(self, **changes) -> GenerationConfig:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ checks
    def check(self, corpus_size: int | None = None, image_shape: tuple[int, ...] | None = None,
              labels: set[int] | None = None) -> None:
        """Raise :class:`NPSError` with a one-line fix for any invalid parameter.

        Types first (a record's JSON or an API caller may hand over anything), then the
        ranges of :data:`LIMITS`, then, given the corpus facts, the fit to the corpus and
        the memory the run needs (:func:`check_memory`).

        Args:
            corpus_size: number of train images, to check k and reference.
            image_shape: (H,W[,C]) of the corpus, to check window and seed size.
            labels: label values present, to check ``label``.
        """
        check_types(dataclasses.asdict(self) | {"constraints": list(self.constraints)})
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise NPSError(f"--{name.replace('_', '-')} {value} is out of range; use {_num(lo)}..{_num(hi)}"
                               f"{LIMIT_WHY.get(name, '')}.")
        if self.window % 2 == 0:
            raise NPSError(f"--window {self.window} must be an odd number >= 3 (e.g. 5, 7, 9) "
                           "so the window has a centre pixel and some context.")
        if self.sigma is not None and not SIGMA_MIN <= self.sigma <= SIGMA_MAX_PER_WINDOW * self.window:
            raise NPSError(f"--sigma {self.sigma} is out of range; use {SIGMA_MIN:g}..{SIGMA_MAX_PER_WINDOW}"
                           f" x window = {SIGMA_MAX_PER_WINDOW * self.window:g} (below {SIGMA_MIN:g} px the weights "
                           "of the nearest pixels vanish in float32; above, the weights are flat), or omit it "
                           "for window/6.4.")
        if self.ssl_mode not in SSL_MODES:
            raise NPSError(f"--ssl-mode '{self.ssl_mode}' is unknown; use {' or '.join(SSL_MODES)}.")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise NPSError(f"--device '{self.device}' is unknown; use cpu or cuda.")
        if not self.corpus.strip():
            raise NPSError("no corpus name given; use --corpus mnist, digits, ... or folder:PATH.")
        if self.search not in SEARCH_MODES:
            raise NPSError(f"--search '{self.search}' is unknown; use {' or '.join(SEARCH_MODES)}.")
        if image_shape is not None:
            h, w = image_shape[:2]
            if self.window > min(h, w):
                raise NPSError(f"--window {self.window} is larger than the {h}x{w} images; "
                               f"use an odd window <= {min(h, w) - (1 - min(h, w) % 2)}.")
            if self.seed_size > min(h, w):
                raise NPSError(f"--seed-size {self.seed_size} is larger than the {h}x{w} canvas; "
                               f"use at most {min(h, w)}.")
            if self.seed_size * self.seed_size >= h * w:
                raise NPSError(f"--seed-size {self.seed_size} covers the whole {h}x{w} canvas, so every sample "
                               f"would be a copy of its reference; use --seed-size {canvas_seed_size(image_shape)} "
                               f"(at most {min(h, w) - 1}).")
        if corpus_size is not None:
            pool_max = corpus_size - (0 if self.include_reference else 1)
            if self.uses("ssl") and self.label is None and self.k > pool_max:
                raise NPSError(f"--k {self.k} is larger than the corpus allows ({pool_max} images "
                               f"besides the reference); use --k <= {pool_max}.")
            if self.reference is not None and not 0 <= self.reference < corpus_size:
                raise NPSError(f"--reference {self.reference} is out of range; "
                               f"train ids are 0..{corpus_size - 1}.")
        if labels is not None and self.label is not None and self.label not in labels:
            raise NPSError(f"--label {self.label} is not in this corpus; labels are "
                           f"{', '.join(map(str, sorted(labels)))}.")
        if corpus_size is not None and image_shape is not None:
            check_memory(self, corpus_size, image_shape)

    def fit_canvas(self, image_shape: tuple[int, ...], seed_size_given: bool = True) -> GenerationConfig:
        """This config, with the default seed shrunk to suit a small canvas.

        The default 8x8 seed is sized for 28x28 images; on the 8x8 ``digits`` canvas it is
        the whole canvas and every sample would equal its reference.  A seed the user did
        not choose (``seed_size_given=False``) wider than half the canvas side is shrunk to
        :func:`canvas_seed_size`; one the user chose is kept (and :meth:`check` refuses it
        if it leaves nothing to sample).  Callers show the change with :func:`warn_fitted`
        once the fitted config has passed its checks (so a refusal stays one line).
        """
        if seed_size_given or 2 * self.seed_size <= min(image_shape[:2]):
            return self
        return self.replace(seed_size=canvas_seed_size(image_shape))

    def windows_per_pixel(self, corpus_size: int, image_shape: tuple[int, ...]) -> int:
        """Candidate windows the appearance rule scores per pixel (at most), the run's cost driver.

        Without ``ssl`` every corpus image is searched, and without ``loc`` every position
        of it: SSD alone over 60k MNIST images is 47M windows per pixel (hours on a CPU).
        """
        h, w = image_shape[:2]
        positions = (min(h, 2 * self.radius + 1) * min(w, 2 * self.radius + 1)) if self.uses("loc") else h * w
        if self.uses("ssl"):
            images = corpus_size if self.label is not None else min(self.k, corpus_size)
        else:
            images = corpus_size
        return int(positions * images)

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["constraints"] = list(self.constraints)
        d["sigma_used"] = self.sigma_
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> GenerationConfig:
        """The config of a dict (a record's ``config``): unknown keys are ignored, known ones type-checked.

        Raises:
            NPSError: a field of the wrong type (one line naming it).
        """
        if not isinstance(d, dict):
            raise NPSError(f"a config must be a JSON object, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        check_types(kwargs)
        if "constraints" in kwargs:
            kwargs["constraints"] = tuple(kwargs["constraints"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> GenerationConfig:
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- bounds and schema
#: Inclusive ranges of the numeric fields (None means unset and is not checked).  They bound
#: what would overflow or mean nothing, not what is wise: the app has tighter BOUNDS.
LIMITS: dict[str, tuple[float, float]] = {
    "n": (1, 10**9), "seed": (0, 2**63 - 1), "window": (3, 255), "eps": (0.0, 1e30), "tol": (0.0, 1e30),
    "max_ssd": (0.0, 1e30), "radius": (0, 4096), "k": (1, 2**31 - 1), "ssl_eps": (0.0, 1e30),
    "reference": (0, 2**63 - 1), "label": (-(2**63), 2**63 - 1), "seed_size": (1, 4096),
    "batch_size": (1, 2**20), "subset": (1, 2**63 - 1),
}
LIMIT_WHY = {
    "eps": " (the threshold (1 + eps) d_min + tol must stay finite in float32; 1e30 already keeps "
           "every window with a non-zero best distance)",
    "tol": " (a finite tolerance, so that excluded windows, held at +inf, never pass)",
    "max_ssd": " (or omit it for no ceiling)",
    "seed": " (numpy seeds are non-negative)",
    "radius": " (any radius past the canvas side is the whole canvas)",
}
#: Every pixel is filled with a known 8-neighbour (the shell before it is complete), whose
#: weight is at least exp(-1/sigma^2); it must stay a normal float32 (> 1.2e-38, so sigma > 0.107)
#: or the window's weights vanish, the SSD is 0/0 and the pool empty.  Measured on digits:
#: sigma 0.08 gave empty pools (w=5), 0.05 an IndexError; 0.15 keeps exp(-44) = 5e-20.
#: Above SIGMA_MAX_PER_WINDOW x window the weights are flat to float32 precision.
SIGMA_MIN = 0.15
SIGMA_MAX_PER_WINDOW = 100


def _schema() -> dict[str, tuple[str, bool]]:
    """{field: (kind, optional)} from GenerationConfig's annotations (one source of truth)."""
    out = {}
    for f in dataclasses.fields(GenerationConfig):
        kind = str(f.type)
        base = next(k for k in ("tuple", "bool", "int", "float", "str") if k in kind)
        out[f.name] = (base, "None" in kind)
    return out


def check_types(values: dict) -> None:
    """Raise NPSError unless every GenerationConfig field in ``values`` has its annotated type.

    Integers must be ints (not bools or floats), floats must be finite numbers, tuples
    lists/tuples of strings; None only where the field is optional.  Other keys are ignored.
    """
    import numbers
    schema = _schema()
    for name, value in values.items():
        if name not in schema:
            continue
        kind, optional = schema[name]
        if value is None:
            if optional:
                continue
            ok = False
        elif kind == "int":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        elif kind == "float":
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(float(value)))
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "str":
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        if not ok:
            want = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                    "tuple": "a list of names"}[kind]
            raise NPSError(f"config field '{name}' = {value!r:.60} must be {want}"
                           f"{' or null' if optional else ''}.")


def warn_fitted(before: GenerationConfig, after: GenerationConfig, image_shape: tuple[int, ...]) -> None:
    """Log a WARNING (the CLI shows it) when :meth:`GenerationConfig.fit_canvas` changed the seed."""
    if before.seed_size != after.seed_size:
        log.warning("the default %dx%d seed would cover most of the %dx%d canvas of '%s'; using a %dx%d seed "
                    "(pass --seed-size to choose)", before.seed_size, before.seed_size, image_shape[0],
                    image_shape[1], before.corpus, after.seed_size, after.seed_size)


def _num(v: float) -> str:
    """A bound for a message: 2^63-1 rather than 9.22337e+18."""
    if isinstance(v, int) and abs(v) > 10**6:
        k = abs(v).bit_length()
        if abs(v) == 2**k - 1:
            return f"{'-' if v < 0 else ''}2^{k}-1"
        if abs(v) == 2 ** (k - 1):
            return f"{'-' if v < 0 else ''}2^{k - 1}"
    return f"{v:g}"


def canvas_seed_size(image_shape: tuple[int, ...]) -> int:
    """A seed side that suits the canvas: a quarter of its shorter side (8x8 digits: 2; MNIST would get 7)."""
    return max(1, min(image_shape[:2]) // 4)


def estimate_run_bytes(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...]) -> int:
    """A generous estimate of the memory a run needs (bytes), from n, the canvas and the batch.

    The record is 5 int64 maps, a bool map and the images per pixel, and the per-step
    uniforms are float64; batches are concatenated, so the whole is held twice.  A batch
    holds its padded canvases and, with per-sample semantic pools, the pool images in
    float32 with their squares (the largest working set of the engine).
    """
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) > 2 else 1
    per_sample = h * w * (c + 5 * 8 + 1 + 8)
    b = min(config.batch_size, config.n)
    hp, wp = h + config.window - 1, w + config.window - 1
    batch = b * (c * hp * wp * 4 + h * w * 8 * 6)
    if config.uses("ssl") and config.label is None:
        batch += 2 * b * hp * wp * (c + 1) * min(config.k, corpus_size) * 4
    else:
        batch += 64 << 20  # chunked distances to a shared pool (nps.sampler.CHUNK_SCORES) and their masks
    return int(2 * config.n * per_sample + batch)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: GenerationConfig, corpus_size: int, image_shape: tuple[int, ...]) -> None:
    """Refuse up front (one line) a run whose estimated memory exceeds what is available."""
    need = estimate_run_bytes(config, corpus_size, image_shape)
    have = available_memory()
    if have is not None and need > have:
        h, w = image_shape[:2]
        raise NPSError(f"this run needs about {need / 1e9:.1f} GB of memory ({config.n} samples of {h}x{w}, "
                       f"batch {min(config.batch_size, config.n)}) but {have / 1e9:.1f} GB is available; "
                       "lower --n or --batch-size.")


DEFAULTS: dict = {f.name: f.default for f in dataclasses.fields(GenerationConfig)}
"""One table of defaults, shared by the CLI, the app and the API."""
