"""The one object that describes a generation, and the one table of its fields.

:class:`GenerationConfig` is shared by the CLI, the app and the saved record (it is
serialised as JSON into every record).  :data:`FIELDS` is the single table of its fields:
type, default, bounds (CLI and app), help, CLI flag and the constraint that owns it.  The
engine's own fields are declared in :mod:`nps.config_fields`; each constraint declares its
own (:mod:`nps.constraints`).  :data:`DEFAULTS`, :data:`LIMITS`, the type schema, the CLI's
flags (:mod:`nps.cli.generate`), the app's bounds (``app_support.state.BOUNDS``),
``nps.cli.command.cli_command``, ``sweep`` and record validation are all read from it.

Fields of a constraint that is not built in (a plug-in registered with
:func:`nps.constraints.register`) are held in :attr:`GenerationConfig.options` and read as
attributes like any other field (``config.my_field``); records carry them as top-level
config keys like the built-in ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field

from nps import constraints as _cons
from nps.config_fields import field_table
from nps.constraints import Field, representation
from nps.errors import NPSError
from nps.shipped import shipped_weights

log = logging.getLogger(__name__)

SSL_MODES = representation.SSL_MODES

_D = field_table()  # the table as the dataclass below is defined (the built-in constraints)

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
        constraints: enabled subset of the registered constraints (:func:`nps.constraints.names`:
            "ssd", "loc", "ssl" and any plug-in), stored in canonical order.
        encoder: representation encoder name ("pca", "pixels", "simclr"), or "auto" (the
            default): the measured best for the corpus (:func:`resolve_encoder`), resolved
            when the config is made, so records always name a concrete encoder.
        ssl_mode: "reference" (k-NN of a reference image), "canvas" (re-embed per shell) or
            "window" (the k images whose window at the pixel is nearest the context in a PCA
            of windows, every step; reading (ii) of issue 12).
        ssl_eps: if set, the semantic pool is adaptive: images with distance
            <= (1 + ssl_eps) * nearest distance, capped at k.
        ssl_cap: the cap of that adaptive pool instead of k (None: k); the corpus size
            gives the uncapped rule (reading (i) of issue 12 with ``ssl_mode="canvas"``).
        ssd_global_min: take the SSD minimum over every window in the locality band of the
            whole corpus, before the semantic pool (reading (iii) of issue 12; off by default).
        reference: fixed reference train id for every sample, or None for random.
        include_reference: let the reference be a candidate source beyond the seed (by default
            it is left out of the candidates in every constraint set).
        label: class-conditional: the semantic pool is all images of this label.
        seed_size: side s of the s x s seed patch copied from the reference.
        batch_size: samples advanced in lockstep.
        device: "cpu" or "cuda".
        search: how steps whose candidates are the whole corpus (no ``ssl``) or a label's shared pool are searched:
            "exact" (the default: pruned by the window index, :mod:`nps.engine.search`, where it is cached or
            built on use, else the dense scan; records identical to "brute", tested on small corpora and on
            60k MNIST), "brute" (score every window in float32, certified) or "approx"
            (opt-in, never the default: the nearest ``nprobe`` index groups only, :mod:`nps.engine.search_approx`).
        nprobe: groups of the window index searched per sample and step by ``search="approx"``.
        data_root: extra folder to look for corpus files.
        options: (name, value) pairs of the fields of plug-in constraints (sorted, defaults
            dropped); read them as attributes (``config.name``).
    """

    corpus: str = _D["corpus"].default
    subset: int | None = _D["subset"].default
    n: int = _D["n"].default
    seed: int = _D["seed"].default
    window: int = _D["window"].default
    sigma: float | None = _D["sigma"].default
    eps: float = _D["eps"].default
    tol: float = _D["tol"].default
    max_ssd: float | None = _D["max_ssd"].default
    radius: int = _D["radius"].default
    k: int = _D["k"].default
    constraints: tuple[str, ...] = _D["constraints"].default
    encoder: str = _D["encoder"].default
    ssl_mode: str = _D["ssl_mode"].default
    ssl_eps: float | None = _D["ssl_eps"].default
    ssl_cap: int | None = _D["ssl_cap"].default
    ssd_global_min: bool = _D["ssd_global_min"].default
    reference: int | None = _D["reference"].default
    include_reference: bool = _D["include_reference"].default
    label: int | None = _D["label"].default
    seed_size: int = _D["seed_size"].default
    batch_size: int = _D["batch_size"].default
    device: str = _D["device"].default
    search: str = _D["search"].default
    nprobe: int = _D["nprobe"].default
    data_root: str | None = field(default=_D["data_root"].default, compare=False)
    options: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        # Accept "ssd,loc" or any iterable, store a canonical tuple (registration order).
        known = _cons.names()
        cons = self.constraints
        if isinstance(cons, str):
            cons = tuple(c.strip() for c in cons.split(",") if c.strip())
        if not isinstance(cons, list | tuple) or not all(isinstance(c, str) for c in cons):
            raise NPSError(f"constraints {cons!r} must be a comma list of {', '.join(known)}.")
        cons = tuple(cons)
        if not cons:
            # An empty set would search every window of every image with no rule at all.
            raise NPSError(f"no constraint is switched on; enable at least one of {', '.join(known)} "
                           "(e.g. --constraints ssd,loc).")
        unknown = [c for c in cons if c not in known]
        if unknown:
            raise NPSError(f"unknown constraint '{unknown[0]}'; use a comma list of {', '.join(known)} "
                           "(e.g. --constraints ssd,loc).")
        object.__setattr__(self, "constraints", tuple(c for c in known if c in cons))
        object.__setattr__(self, "options", _options(self.options))
        if not isinstance(self.encoder, str) or not isinstance(self.corpus, str):
            raise NPSError("corpus and encoder must be names (strings).")
        # The name load_corpus reads ("digits " is digits): a record must name what it was made on.
        object.__setattr__(self, "corpus", self.corpus.strip())
        object.__setattr__(self, "encoder", resolve_encoder(self.encoder, self.corpus))

    def __getattr__(self, name: str) -> object:
        """A plug-in constraint's field (:attr:`options`, else its default)."""
        if name.startswith("_") or name == "options" or name not in FIELDS or name in _DATACLASS_FIELDS:
            raise AttributeError(f"GenerationConfig has no field '{name}'")
        return dict(object.__getattribute__(self, "options")).get(name, FIELDS[name].default)

    @classmethod
    def make(cls, **fields: object) -> GenerationConfig:
        """A config from any fields of :data:`FIELDS`, plug-in constraints' fields included."""
        core = {k: v for k, v in fields.items() if k in _DATACLASS_FIELDS}
        extra = {k: v for k, v in fields.items() if k not in _DATACLASS_FIELDS}
        if extra:
            core["options"] = (*dict(core.get("options", ())).items(), *extra.items())  # type: ignore[arg-type]
        return cls(**core)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ derived
    @property
    def sigma_(self) -> float:
        """The Gaussian std actually used."""
        return float(self.sigma) if self.sigma is not None else self.window / 6.4

    def uses(self, constraint: str) -> bool:
        return constraint in self.constraints

    def replace(self, **changes) -> GenerationConfig:
        """This config with ``changes`` (any field of :data:`FIELDS`, plug-in constraints' included)."""
        extra = {k: v for k, v in changes.items() if k not in _DATACLASS_FIELDS}
        core = {k: v for k, v in changes.items() if k in _DATACLASS_FIELDS}
        if extra:
            core["options"] = (*dict(core.get("options", self.options)).items(), *extra.items())
        return dataclasses.replace(self, **core)

    # ------------------------------------------------------------------ checks
    def check(self, corpus_size: int | None = None, image_shape: tuple[int, ...] | None = None,
              labels: set[int] | None = None) -> None:
        """Raise :class:`NPSError` with a one-line fix for any invalid parameter.

        Types first (a record's JSON or an API caller may hand over anything), then the
        ranges of :data:`LIMITS`, then, given the corpus facts, the fit to the corpus and
        the memory the run needs (:func:`nps.memory.check_memory`).

        Args:
            corpus_size: number of train images, to check k and reference.
            image_shape: (H,W[,C]) of the corpus, to check window and seed size.
            labels: label values present, to check ``label``.
        """
        check_types(dataclasses.asdict(self) | {"constraints": list(self.constraints)})
        missing = [c for c in self.constraints if c not in _cons.names()]
        if missing:  # a config made where a plug-in was registered, run where it is not (a Ray worker)
            raise NPSError(f"constraint '{missing[0]}' is not registered in this process; import the module that "
                           "registers it (nps.constraints.register) before generating.")
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise NPSError(f"--{name.replace('_', '-')} {value} is out of range; use {_num(lo)}..{_num(hi)}"
                               f"{FIELDS[name].why}.")
        if self.window % 2 == 0:
            raise NPSError(f"--window {self.window} must be an odd number >= 3 (e.g. 5, 7, 9) "
                           "so the window has a centre pixel and some context.")
        if self.sigma is not None and not SIGMA_MIN <= self.sigma <= SIGMA_MAX_PER_WINDOW * self.window:
            raise NPSError(f"--sigma {self.sigma} is out of range; use {SIGMA_MIN:g}..{SIGMA_MAX_PER_WINDOW}"
                           f" x window = {SIGMA_MAX_PER_WINDOW * self.window:g} (below {SIGMA_MIN:g} px the weights "
                           "of the nearest pixels vanish in float32; above, the weights are flat), or omit it "
                           "for window/6.4.")
        for f in FIELDS.values():
            value = getattr(self, f.name)
            if f.choices is not None and value not in f.choices:
                raise NPSError(f"{f.cli_flag} '{value}' is unknown; use {' or '.join(f.choices)}.")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise NPSError(f"--device '{self.device}' is unknown; use cpu or cuda.")
        if not self.corpus.strip():
            raise NPSError("no corpus name given; use --corpus mnist, digits, ... or folder:PATH.")
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
            for c in _cons.active(self):
                c.check(self, corpus_size)
            if self.reference is not None and not 0 <= self.reference < corpus_size:
                raise NPSError(f"--reference {self.reference} is out of range; "
                               f"train ids are 0..{corpus_size - 1}.")
        if labels is not None and self.label is not None and self.label not in labels:
            raise NPSError(f"--label {self.label} is not in this corpus; labels are "
                           f"{', '.join(map(str, sorted(labels)))}.")
        if corpus_size is not None and image_shape is not None:
            from nps.memory import check_memory
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
        positions, images = h * w, corpus_size
        for c in _cons.active(self):  # each constraint's cost factor (nps.constraints.Constraint.cost_*)
            positions = c.cost_positions(self, h, w, positions)
            images = c.cost_images(self, corpus_size, images)
        extra = 0  # the opt-in sampling readings (nps.engine.sampling_readings) also scan the whole corpus per pixel
        if self.uses("ssl") and self.ssl_mode == "window":
            extra += corpus_size  # every image's window at the pixel is ranked
        if self.ssd_global_min and self.uses("ssd"):
            extra += positions * corpus_size  # the minimum over every image's windows in the band
        return int(positions * images + extra)

    def per_sample_pools(self) -> bool:
        """Whether each sample gets its own small pool of images (the engine's faster path)."""
        return any(c.per_sample_pools(self) for c in _cons.active(self, "images"))

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        """Every field by name (plug-in constraints' fields as top-level keys too), and ``sigma_used``."""
        d = dataclasses.asdict(self)
        d.pop("options")
        for f in plugin_fields():  # only where set or enabled, so a built-in config's JSON is unchanged
            if f.name in dict(self.options) or self.uses(f.owner or ""):
                d[f.name] = getattr(self, f.name)
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
        kwargs = {k: v for k, v in d.items() if k in FIELDS}
        check_types(kwargs)
        if "constraints" in kwargs:
            kwargs["constraints"] = tuple(kwargs["constraints"])
        return cls.make(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> GenerationConfig:
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- bounds and schema
#: The field table: every GenerationConfig field (plug-in constraints' included), by name.
#: Rebuilt in place when the constraint registry changes, so references to it stay current.
FIELDS: dict[str, Field] = {}
#: Defaults of every field, from :data:`FIELDS` (one table, shared by the CLI, the app and the API).
DEFAULTS: dict = {}
#: Inclusive ranges of the numeric fields (None means unset and is not checked).  They bound
#: what would overflow or mean nothing, not what is wise: the app has tighter bounds (``Field.app``).
LIMITS: dict[str, tuple[float, float]] = {}
_DATACLASS_FIELDS = frozenset(f.name for f in dataclasses.fields(GenerationConfig)) - {"options"}


def _rebuild() -> None:
    """Refill FIELDS, DEFAULTS and LIMITS from the engine's fields and every registered constraint's."""
    table = field_table()
    FIELDS.clear()
    FIELDS.update(table)
    DEFAULTS.clear()
    DEFAULTS.update({name: f.default for name, f in table.items()})
    LIMITS.clear()
    LIMITS.update({name: f.limits for name, f in table.items() if f.limits is not None})


def plugin_fields() -> tuple[Field, ...]:
    """Fields of constraints that are not GenerationConfig attributes (held in ``options``)."""
    return tuple(f for f in FIELDS.values() if f.name not in _DATACLASS_FIELDS)


def _options(options: object) -> tuple[tuple[str, object], ...]:
    """Plug-in field values as sorted (name, value) pairs, defaults dropped; unknown names refused."""
    pairs = dict(options.items() if isinstance(options, dict) else options)  # type: ignore[union-attr, arg-type]
    for name in pairs:
        if name not in FIELDS or name in _DATACLASS_FIELDS:
            raise NPSError(f"'{name}' is not a field of a registered constraint; drop it or register its constraint.")
    check_types(pairs)
    return tuple(sorted((k, v) for k, v in pairs.items() if v != FIELDS[k].default))


_rebuild()
_cons.on_change(_rebuild)
#: Every pixel is filled with a known 8-neighbour (the shell before it is complete), whose
#: weight is at least exp(-1/sigma^2); it must stay a normal float32 (> 1.2e-38, so sigma > 0.107)
#: or the window's weights vanish, the SSD is 0/0 and the pool empty.  Measured on digits:
#: sigma 0.08 gave empty pools (w=5), 0.05 an IndexError; 0.15 keeps exp(-44) = 5e-20.
#: Above SIGMA_MAX_PER_WINDOW x window the weights are flat to float32 precision.
SIGMA_MIN = 0.15
SIGMA_MAX_PER_WINDOW = 100


def _schema() -> dict[str, tuple[str, bool]]:
    """{field: (kind, optional)} from :data:`FIELDS` (tests check it against the annotations)."""
    return {name: (f.kind, f.optional) for name, f in FIELDS.items()}


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
