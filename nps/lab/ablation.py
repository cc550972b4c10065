"""The README's ablation table as a preset: the same runs as ``python -m nps ablate``, cached, compared.

A preset is a command line of ``nps ablate`` (:data:`PRESETS`): :func:`run_preset` parses it
with the CLI's own parser and calls :func:`nps.cli.ablate.run`, so the page and the CLI run
one code path and make the same figures.  What the table needs is kept by :func:`trim`
(the report's ``metrics.json`` format, cut to the table's rows and figures):

=====================  ============================================================
key                    what
=====================  ============================================================
``command``            the ``nps ablate`` command line that made it (its ``--out`` folder as ``DIR``)
``version``            ``nps.__version__`` of the run
``created``            when
``real``               the real-image ceiling at the same n (``is_mean``, ``is_std``, ``fid``, ``n``)
``configs[slug]``      per configuration of :data:`TABLE_SLUGS` (and any other ``nps ablate`` ran):
                       ``label``, ``n``, ``engine`` (:data:`nps.record.ENGINE_VERSION` of its record),
                       ``subset``, ``k``, ``encoder``, ``is_mean``/``is_std`` (10 splits),
                       ``is_all`` (1 split), ``fid`` (``value``, ``low``, ``high``: 95 % bootstrap),
                       ``class``/``image_id`` (``mean``, ``std`` over samples, bits),
                       ``research`` (Table 3: metric -> ``value``, ``low``, ``high``, ``n``,
                       ``reliable``, ``why``), ``seconds``
=====================  ============================================================

The published figures are :data:`PUBLISHED` (``docs/ablation.json``, trimmed from the
``metrics.json`` that ``docs/ablation.md`` was rendered from).  A run is cached in
``cache/ablation-<key>.npz`` (:func:`nps.cache.cached_arrays`: atomic, validated, under the
quota), keyed by the command line, the package and engine versions and the corpus's content
hash, so a second visit reads the table at once (:func:`peek`).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "ablation.json"
#: the README table's rows, in its order: the three constraint sets on the subset, the full model on all images
TABLE_SLUGS = ("ssd", "ssd+loc", "ssd+loc+ssl", "full:ssd+loc+ssl")
KIND = "ablation"
#: MNIST's train size and image shape (the presets' corpus), for the estimate without loading it
MNIST_TRAIN, MNIST_SHAPE = 60000, (28, 28)
TABLE_VERSION = 1  # bump when trim()'s format changes: old cache entries are then not read
#: the figures compared with the published ones (a path into a trimmed config, digits shown)
FIGURES = (("IS", ("is_mean",), 2), ("IS std", ("is_std",), 2), ("FID", ("fid", "value"), 1),
           ("FID low", ("fid", "low"), 1), ("FID high", ("fid", "high"), 1),
           ("class entropy", ("class", "mean"), 3), ("image-ID entropy", ("image_id", "mean"), 3))
# Calibration (2026-12-01, this 2-core shared machine, warm caches), measured against nps.lab.cost's model,
# whose SSD-only rows (every position of every subset image) dominate both presets:
#   README preset's run (docs/ablation.json, load 3.5-5.5): SSD only 441 s sampling, modelled 651 s (0.68);
#   quick, from the CLI (load 2.6-5.5): 174 s wall, SSD only 85 s, modelled 109 s (0.78), the full-corpus
#     row 29 s (its pools built cold);
#   quick, from the page (load 2.4-3.5): 81 s wall, SSD only 62 s (0.57), 19 s for everything else.
#: measured over modelled sampling time
SAMPLING_FACTOR = 0.7
#: seconds per configuration outside sampling (IS/FID, entropies, bootstrap intervals, pictures)
EVAL_S = 4.0
#: loading MNIST, its classifier and encoders once per run
SETUP_S = 10.0


@dataclass(frozen=True)
class AblationPreset:
    """One ``nps ablate`` command line offered as a preset.

    Attributes:
        name: the preset's key ("readme", "quick").
        title: the button's words.
        argv: the command's arguments after ``ablate`` and before ``--out``.
        n: samples per configuration; subset: the shared stratified subset's size.
        readme: whether its figures are the README's (the same n, subset and seed).
    """

    name: str
    title: str
    argv: tuple[str, ...]
    n: int
    subset: int
    readme: bool

    def command(self, out: str = "DIR") -> str:
        """The CLI command that makes the same table."""
        return "python -m nps ablate " + " ".join((*self.argv, "--out", out))


def _presets() -> dict[str, AblationPreset]:
    from nps.cli.ablate import QUICK
    # The README's n and subset are written out, so a later change of the CLI's defaults keeps this its table;
    # one encoder and no baselines: the table's rows only (every other row runs independently of them).
    common = ("--corpus", "mnist", "--seed", "0", "--encoders", "simclr", "--baselines", "none")
    return {"readme": AblationPreset("readme", "Reproduce the README's ablation table",
                                     (*common, "--n", "128", "--subset", "300"), 128, 300, True),
            "quick": AblationPreset("quick", "Quick version (not the README's n)", (*common, "--quick"),
                                    QUICK["n"], QUICK["subset"], False)}


PRESETS = _presets()


def plan(preset: AblationPreset) -> list[tuple]:
    """(slug, label, config, "subset" | "full") of every configuration the preset runs, as ``nps ablate`` plans it."""
    from nps.cli import build_parser
    from nps.cli.ablate import ablation_plan, auto_k
    from nps.config import DEFAULTS, GenerationConfig
    # The preset's own command line decides corpus, seed, encoders and k (no second copy of them here);
    # the sizes are MNIST's, the only corpus the published table has, so nothing is loaded to estimate.
    args = build_parser().parse_args(["ablate", *preset.argv, "--out", "DIR"])
    if args.corpus != "mnist":
        raise ValueError(f"preset '{preset.name}' runs on {args.corpus!r}; the estimate knows MNIST's sizes only")
    encoders = [e.strip() for e in (args.encoders or "simclr").split(",")]
    base = GenerationConfig.make(corpus=args.corpus, subset=preset.subset, n=preset.n, seed=args.seed,
                                 k=args.k if args.k is not None else auto_k(preset.subset), encoder=encoders[0],
                                 batch_size=args.batch_size).fit_canvas(MNIST_SHAPE)
    return ablation_plan(base, encoders, MNIST_TRAIN, args.k if args.k is not None else DEFAULTS["k"])


def estimate_seconds(preset: AblationPreset, cold_embedding: bool = False) -> float:
    """The expected wall time: :func:`nps.lab.cost.estimate` per configuration (times
    :data:`SAMPLING_FACTOR`), plus :data:`EVAL_S` per configuration and :data:`SETUP_S`.

    Args:
        cold_embedding: the corpus's SimCLR embeddings are not cached yet (adds
            :data:`nps.lab.cost.EMBED_COLD_S`).
    """
    from nps.lab.cost import EMBED_COLD_S, estimate
    steps = plan(preset)
    sampling = sum(estimate(cfg, preset.subset if which == "subset" else MNIST_TRAIN, MNIST_SHAPE).seconds
                   for _, _, cfg, which in steps)
    return SETUP_S + SAMPLING_FACTOR * sampling + EVAL_S * len(steps) + (EMBED_COLD_S if cold_embedding else 0.0)


def trim(summary: dict) -> dict:
    """The table's part of an ablation ``metrics.json`` (the format in this module's docstring)."""
    configs = {}
    for slug, r in summary["configs"].items():
        s = (r.get("scores") or {}).get("samples") or {}
        research = r.get("research") or {}
        cfg = r.get("config") or {}
        configs[slug] = {
            "label": r["label"], "n": r["n"], "engine": cfg.get("engine"), "subset": cfg.get("subset"),
            "k": cfg.get("k"), "encoder": cfg.get("encoder"),
            "is_mean": s.get("is_mean"), "is_std": s.get("is_std"), "is_all": s.get("is_all"),
            "fid": {k: v for k, v in ((research.get("metrics") or {}).get("fid") or {}).items()
                    if k in ("value", "low", "high", "n")},
            "class": {k: r["entropy"]["class"][k] for k in ("mean", "std")},
            "image_id": {k: r["entropy"]["image_id"][k] for k in ("mean", "std")},
            "research": research.get("metrics") or {}, "seconds": r.get("seconds")}
    # The output folder is a server path (a temporary one, for the app): the command names it DIR, as the README does
    command = re.sub(r"--out(\s+|=)\S+", "--out DIR", summary.get("command") or "")
    return {"command": command, "version": summary.get("version"), "created": summary.get("created"),
            "machine": summary.get("machine"), "real": summary.get("real"), "configs": configs}


def load_published(path: Path = PUBLISHED) -> dict:
    """The README's figures (``docs/ablation.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _pm(m: float | None, s: float | None, digits: int) -> str:
    return "—" if m is None else f"{m:.{digits}f} ± {s:.{digits}f}"


def _ci(m: dict | None, digits: int = 1) -> str:
    if not m or m.get("value") is None:
        return "—"
    return f"{m['value']:.{digits}f} [{m['low']:.{digits}f}, {m['high']:.{digits}f}]"


def table_rows(table: dict, published: dict | None = None) -> list[dict]:
    """The README's table: one row per configuration of :data:`TABLE_SLUGS` present, then the real ceiling.

    With ``published``, each row gains the README's figures beside ours.
    """
    from nps.lab.report import PAPER
    rows = []
    for slug in TABLE_SLUGS:
        c = table["configs"].get(slug)
        if c is None:
            continue
        row = {"configuration": c["label"], "n": str(c["n"]),
               "IS (10 splits, ± std)": _pm(c["is_mean"], c["is_std"], 2),
               "FID (classifier) [95 %]": _ci(c["fid"]),
               "class entropy (bits, ± std)": _pm(c["class"]["mean"], c["class"]["std"], 3),
               "image-ID entropy (bits, ± std)": _pm(c["image_id"]["mean"], c["image_id"]["std"], 3)}
        p = (published or {}).get("configs", {}).get(slug)
        if published is not None:  # the README's figures beside ours ("—" where it has none)
            row.update({"README: IS": _pm(p["is_mean"], p["is_std"], 2) if p else "—",
                        "README: FID": _ci(p["fid"]) if p else "—",
                        "README: class H": f"{p['class']['mean']:.3f}" if p else "—",
                        "README: image-ID H": f"{p['image_id']['mean']:.3f}" if p else "—"})
        rows.append(row)
    real = table.get("real")
    if real:
        rows.append({"configuration": f"real test images (n = {real['n']})", "n": str(real["n"]),
                     "IS (10 splits, ± std)": _pm(real["is_mean"], real["is_std"], 2),
                     "FID (classifier) [95 %]": f"{real['fid']:.1f}", "class entropy (bits, ± std)": "—",
                     "image-ID entropy (bits, ± std)": "—"})
    rows.append({"configuration": "paper, full model", "n": "—", "IS (10 splits, ± std)": f"{PAPER['is']:.2f}",
                 "FID (classifier) [95 %]": "—", "class entropy (bits, ± std)": "1.075",
                 "image-ID entropy (bits, ± std)": "2.496"})
    if published is not None:
        for row in rows:
            for col in ("README: IS", "README: FID", "README: class H", "README: image-ID H"):
                row.setdefault(col, "—")
    return rows


def research_rows(table: dict) -> list[dict]:
    """Table 3 for the table's configurations: every research metric as ``value [low, high]``, with its n."""
    from nps.lab.report import RESEARCH_COLUMNS
    rows = []
    for slug in TABLE_SLUGS:
        c = table["configs"].get(slug)
        if c is None or not c.get("research"):
            continue
        row: dict = {"configuration": c["label"], "n": str(c["n"])}
        for key, head, digits, pct in RESEARCH_COLUMNS:
            m = c["research"].get(key)
            if not m or m.get("value") is None:
                row[head] = "—"
                continue
            f = (lambda v, d=digits: f"{100 * v:.{d}f}%") if pct else (lambda v, d=digits: f"{v:.{d}f}")
            row[head] = f"{f(m['value'])} [{f(m['low'])}, {f(m['high'])}]" + ("" if m.get("reliable", True) else " ⚠")
        rows.append(row)
    return rows


def _get(d: dict, path: tuple[str, ...]) -> float | None:
    for p in path:
        d = (d or {}).get(p)
    return d


def differences(table: dict, published: dict) -> list[str]:
    """Every figure of the table's rows that differs from the published one (beyond float round-off).

    A figure that differs at the digits the table shows gets a line of its own; those that differ
    only below them (a few changed draws move a figure by 1e-4) get one line per row, so a
    difference is never hidden and never shown as "7.10 (README 7.10)".
    """
    out = []
    for slug in TABLE_SLUGS:
        ours, theirs = table["configs"].get(slug), published["configs"].get(slug)
        if ours is None or theirs is None:
            out.append(f"{slug}: {'not run' if ours is None else 'not published'}")
            continue
        hidden = []
        for name, path, digits in FIGURES:
            a, b = _get(ours, path), _get(theirs, path)
            if a is None or b is None:
                if a is not b:
                    out.append(f"{ours['label']}: {name} {a} (README {b})")
            elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
                if f"{a:.{digits}f}" != f"{b:.{digits}f}":
                    out.append(f"{ours['label']}: {name} {a:.{digits}f} (README {b:.{digits}f})")
                else:
                    hidden.append((abs(a - b), name))
        if hidden:
            gap, name = max(hidden)
            out.append(f"{ours['label']}: {len(hidden)} figure(s) differ below the digits shown (largest: {name} "
                       f"by {gap:.1e})")
    return out


def why_different(table: dict, published: dict) -> list[str]:
    """What differs between the run's setting and the published one (engine, package version, n, subset)."""
    from nps.record import ENGINE_VERSION
    reasons = []
    engines = {c.get("engine") for c in published["configs"].values()}
    ours = {c.get("engine") for c in table["configs"].values()} or {ENGINE_VERSION}
    if engines != ours:
        reasons.append(f"the README's figures were made with engine version {', '.join(map(str, sorted(engines)))}, "
                       f"this run with {', '.join(map(str, sorted(ours)))} (nps.record.ENGINE_VERSION: a change "
                       "that may alter draws)")
    if published.get("version") != table.get("version"):
        reasons.append(f"nps {published.get('version')} made the README's figures, nps {table.get('version')} this run")
    for slug in TABLE_SLUGS:
        a, b = table["configs"].get(slug), published["configs"].get(slug)
        if a and b and (a["n"], a.get("subset"), a.get("k")) != (b["n"], b.get("subset"), b.get("k")):
            reasons.append(f"{a['label']}: n = {a['n']}, subset {a.get('subset')}, k = {a.get('k')} here; "
                           f"n = {b['n']}, subset {b.get('subset')}, k = {b.get('k')} in the README")
    return reasons


# --------------------------------------------------------------------------- running and caching
def cache_key(preset: AblationPreset, corpus_hash: str) -> str:
    """The content key of a preset's run: its command line, the package and engine versions, the corpus."""
    from nps import __version__
    from nps.cache import content_key
    from nps.record import ENGINE_VERSION
    return content_key(KIND, TABLE_VERSION, preset.argv, __version__, ENGINE_VERSION, corpus_hash)


def _unpack(arrays: dict[str, np.ndarray]) -> tuple[dict, bytes]:
    return json.loads(arrays["table"].tobytes().decode("utf-8")), arrays["figure2"].tobytes()


def peek(preset: AblationPreset, corpus_hash: str) -> tuple[dict, bytes] | None:
    """The cached run of ``preset`` (its trimmed table and Figure 2 PNG), or None; never runs anything."""
    from nps.cache import cache_root, load_validated_npz
    key = cache_key(preset, corpus_hash)
    path = cache_root() / f"{KIND}-{key}.npz"
    hit = load_validated_npz(path, key, quiet=True) if path.is_file() else None
    return _unpack(hit[0]) if hit is not None else None


def run_preset(preset: AblationPreset, report: Callable[[str, float], object] | None = None) -> tuple[dict, bytes]:
    """Run the preset's ``nps ablate`` command line in a temporary folder; return its trimmed table and Figure 2.

    Args:
        report: ``report(stage, fraction)``, as :func:`nps.cli.ablate.run` calls it; False stops the sampling.
    """
    from nps.cli import ablate, build_parser
    with tempfile.TemporaryDirectory(prefix="nps-ablate-") as tmp:
        args = build_parser().parse_args(["ablate", *preset.argv, "--out", tmp])
        ablate.run(args, report=report)
        table = trim(json.loads((Path(tmp) / "metrics.json").read_text(encoding="utf-8")))
        table["command"] = preset.command()  # metrics.json has this process's argv (the app server's, here)
        return table, (Path(tmp) / "figure2.png").read_bytes()


def cached_run(preset: AblationPreset, corpus_hash: str, report: Callable[[str, float], object] | None = None,
               runner: Callable | None = None) -> tuple[dict, bytes]:
    """:func:`run_preset` through ``cache/`` (a hit returns at once; in read-only mode a miss is not stored).

    Args:
        runner: what makes the table on a miss (default :func:`run_preset`; tests pass a stand-in).
    """
    from nps.cache import cached_arrays

    def build() -> dict[str, np.ndarray]:
        table, png = (runner or run_preset)(preset, report)
        blob = json.dumps(table, sort_keys=True).encode("utf-8")
        return {"table": np.frombuffer(blob, np.uint8).copy(), "figure2": np.frombuffer(png, np.uint8).copy()}

    return _unpack(cached_arrays(KIND, cache_key(preset, corpus_hash), build, meta={"preset": preset.name}))
