"""The one object that describes a generation.

:class:`GenerationConfig` is shared by the CLI, the app and the saved record (it is
serialised as JSON into every record).  :data:`DEFAULTS` is the single table of
defaults; the CLI builds its flags and help from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from nps.errors import NPSError
from nps.shipped import shipped_weights

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
        cons = tuple(cons)
        unknown = [c for c in cons if c not in CONSTRAINTS]
        if unknown:
            raise NPSError(f"unknown constraint '{unknown[0]}'; use a comma list of {', '.join(CONSTRAINTS)} "
                           "(e.g. --constraints ssd,loc).")
        object.__setattr__(self, "constraints", tuple(c for c in CONSTRAINTS if c in cons))
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

        Args:
            corpus_size: number of train images, to check k and reference.
            image_shape: (H,W[,C]) of the corpus, to check window and seed size.
            labels: label values present, to check ``label``.
        """
        if self.window < 3 or self.window % 2 == 0:
            raise NPSError(f"--window {self.window} must be an odd number >= 3 (e.g. 5, 7, 9) "
                           "so the window has a centre pixel and some context.")
        if self.sigma is not None and not self.sigma > 0:
            raise NPSError(f"--sigma {self.sigma} must be > 0 (or omit it for window/6.4).")
        if not self.eps >= 0:
            raise NPSError(f"--eps {self.eps} must be >= 0 (0 keeps only the best matches).")
        if not self.tol >= 0:
            raise NPSError(f"--tol {self.tol} must be >= 0.")
        if self.max_ssd is not None and not self.max_ssd >= 0:
            raise NPSError(f"--max-ssd {self.max_ssd} must be >= 0 (or omit it).")
        if self.radius < 0:
            raise NPSError(f"--radius {self.radius} must be >= 0 (0 copies from the same position).")
        if self.k < 1:
            raise NPSError(f"--k {self.k} must be >= 1.")
        if self.n < 1:
            raise NPSError(f"--n {self.n} must be >= 1.")
        if self.batch_size < 1:
            raise NPSError(f"--batch-size {self.batch_size} must be >= 1.")
        if self.seed_size < 1:
            raise NPSError(f"--seed-size {self.seed_size} must be >= 1.")
        if self.ssl_mode not in SSL_MODES:
            raise NPSError(f"--ssl-mode '{self.ssl_mode}' is unknown; use {' or '.join(SSL_MODES)}.")
        if self.ssl_eps is not None and not self.ssl_eps >= 0:
            raise NPSError(f"--ssl-eps {self.ssl_eps} must be >= 0.")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise NPSError(f"--device '{self.device}' is unknown; use cpu or cuda.")
        if self.search not in SEARCH_MODES:
            raise NPSError(f"--search '{self.search}' is unknown; use {' or '.join(SEARCH_MODES)}.")
        if self.subset is not None and self.subset < 1:
            raise NPSError(f"--subset {self.subset} must be >= 1.")
        if image_shape is not None:
            h, w = image_shape[:2]
            if self.window > min(h, w):
                raise NPSError(f"--window {self.window} is larger than the {h}x{w} images; "
                               f"use an odd window <= {min(h, w) - (1 - min(h, w) % 2)}.")
            if self.seed_size > min(h, w):
                raise NPSError(f"--seed-size {self.seed_size} is larger than the {h}x{w} canvas; "
                               f"use at most {min(h, w)}.")
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
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "constraints" in kwargs:
            kwargs["constraints"] = tuple(kwargs["constraints"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> GenerationConfig:
        return cls.from_dict(json.loads(text))


DEFAULTS: dict = {f.name: f.default for f in dataclasses.fields(GenerationConfig)}
"""One table of defaults, shared by the CLI, the app and the API."""
