"""The baselines table: learned models beside NPS on the same image metrics (markdown).

Each row is the ``metrics.json`` that ``python -m nps evaluate`` wrote for one sample
file or record, plus, for a baseline, the JSON card of the weights it was sampled from
(training wall time, epochs, sampling ms/image).  Laid out like :mod:`nps.lab.report`.
"""

from __future__ import annotations

import json
from pathlib import Path

from nps.errors import NPSError
from nps.lab.report import _num, _pm, _table

HEADER = ["model", "n", "IS (10 splits)", "FID (classifier)", "real IS / FID at n", "memorised (pixels)",
          "exact copies", "training", "sampling ms/image"]


def read_metrics(path: str | Path) -> dict:
    """A ``metrics.json`` (or the folder holding one) as a dict; one NPSError line if unreadable."""
    p = Path(path)
    p = p / "metrics.json" if p.is_dir() else p
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise NPSError(f"cannot read metrics '{p}' ({type(exc).__name__}); run `python -m nps evaluate` first.") \
            from None


def card_for(metrics: dict) -> dict | None:
    """The JSON card of the weights a baseline sample file was drawn from, if it is shipped."""
    from nps.shipped import WEIGHTS_DIR
    name = (metrics.get("config") or {}).get("weights")
    if metrics.get("kind") != "baseline" or not name:
        return None
    card = (WEIGHTS_DIR / name).with_suffix(".json")
    return json.loads(card.read_text()) if card.is_file() else None


def table_row(label: str, metrics: dict) -> list[str]:
    """One markdown row: scores, memorisation, training cost and sampling time."""
    s, m = metrics.get("scores") or {}, metrics.get("memorisation") or {}
    sm, real = s.get("samples", {}), s.get("real", {})
    px = m.get("pixels", {})
    card = card_for(metrics)
    if card:
        train = f"{card['train_seconds'] / 60:.1f} min, {card['epochs_completed']:g} epochs"
        ms = _num(card.get("sampling_ms_per_image"), 3)
    elif metrics.get("kind") == "baseline":
        train, ms = "—", "—"
    else:
        train, ms = "none (training-free)", "—"
    return [label, str(metrics.get("n", "—")), _pm(sm.get("is_mean"), sm.get("is_std")), _num(sm.get("fid"), 1),
            f"{_num(real.get('is_mean'))} / {_num(real.get('fid'), 1)}",
            f"{_num(px.get('fraction_below'), 1, pct=True)} (real {_num(px.get('real_fraction_below'), 1, pct=True)})",
            str(m.get("exact_copies", "—")), train, ms]


def comparison_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """The markdown table of ``(label, metrics)`` rows, with the protocol under it."""
    lines = _table(HEADER, [table_row(label, met) for label, met in rows])
    protocol = next((met["scores"].get("protocol") for _, met in rows if met.get("scores")), None)
    if protocol:
        lines += ["", f"Protocol: {protocol} Memorised: share of samples whose nearest / second-nearest "
                      "training-image pixel distance ratio is below 1/3 (real: the same for test images)."]
    return lines
