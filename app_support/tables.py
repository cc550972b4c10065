"""Tables the lab shows and exports: the ablation metrics, with the sample size each needs.

Pure python (no streamlit): the Ablations page builds one row per column from these
helpers, shows them as one table under the grids and offers it as CSV and Markdown.
A metric computed from too few samples is kept in the table but marked, with the
reason, instead of being shown as if it were a measurement.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

from nps.analysis.entropy import CLASS_ENTROPY, IMAGE_ID_ENTROPY, STD

#: The smallest n at which each metric is shown as a measurement.
#: IS: the app splits n into n // 16 parts (at most 10); below 32 there is one split, so its
#: "± std" is 0 by construction and says nothing.  FID: the mean and covariance of the
#: classifier features are estimated from n samples; below 64 the estimate's bias dominates
#: (FID grows as n shrinks), so columns of different n, or a column and "real", cannot be
#: compared.  Entropies are averages of per-sample values and are fine from 4 samples up.
MIN_N: dict[str, int] = {"is": 32, "fid": 64, "entropy": 4}
REASONS: dict[str, str] = {
    "is": "one split of {n} samples, so no spread (± would read 0.00); IS needs n ≥ {m}",
    "fid": "FID from {n} samples is dominated by estimation bias; compare at n ≥ {m}",
    "entropy": "too few samples for a mean entropy; use n ≥ {m}",
}


def unreliable(metric: str, n: int) -> str | None:
    """Why ``metric`` of ``n`` samples is not a measurement, or None when n is enough."""
    m = MIN_N[metric]
    return None if n >= m else REASONS[metric].format(n=n, m=m)


def fmt(value: float | None, std: float | None = None, digits: int = 2) -> str:
    """'4.12 ± 0.57', '4.12', or '' for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def ablation_row(column: int, label: str, config: Mapping[str, object], n: int, seconds: float,
                 entropy: Mapping[str, float] | None, scores: Mapping[str, Mapping[str, float]] | None) -> dict:
    """One table row for an ablation column; metrics below their minimum n are left blank and noted.

    Args:
        config: the record's config (``constraints``, ``encoder``, ``k``, ``subset``, ``corpus``).
        entropy: :func:`nps.analysis.entropy.entropy_metrics` output, or None.
        scores: ``classifier_report`` output (``samples`` and ``real``), or None when not scored.
    """
    from nps.constraints import chooses_images
    cons = list(config.get("constraints", ()))  # type: ignore[call-overload]
    sub = config.get("subset")
    row = {"column": column, "record": label, "corpus": config.get("corpus"),
           "training images": f"subset {sub}" if sub else "all",
           "constraints": "+".join(cons) if cons else "none",
           "encoder": f"{config.get('encoder')} (k={config.get('k')})" if chooses_images(cons) else "no representation",
           "n": n, "ms/image": round(seconds / max(n, 1) * 1000, 1)}
    notes = []
    if entropy is not None:
        why = unreliable("entropy", n)
        row["class entropy (bits)"] = "" if why else fmt(entropy[CLASS_ENTROPY], entropy[CLASS_ENTROPY + STD], 3)
        row["image-ID entropy (bits)"] = "" if why else fmt(entropy[IMAGE_ID_ENTROPY],
                                                            entropy[IMAGE_ID_ENTROPY + STD], 3)
        if why:
            notes.append(f"entropies: {why}")
    if scores is not None:
        s, r = scores["samples"], scores["real"]
        why = unreliable("is", n)
        row["IS"] = "" if why else fmt(s["is_mean"], s["is_std"])
        row["IS, real test images (same n)"] = "" if why else fmt(r["is_mean"], r["is_std"])
        if why:
            notes.append(f"IS: {why}")
        why = unreliable("fid", n)
        row["FID (classifier)"] = "" if why else fmt(s["fid"], digits=1)
        row["FID, real test images (same n)"] = "" if why else fmt(r["fid"], digits=1)
        if why:
            notes.append(f"FID: {why}")
    row["notes"] = "; ".join(notes)
    return row


def _columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    return cols


def to_csv(rows: Sequence[Mapping[str, object]]) -> str:
    """The rows as CSV (a header of every key that occurs, in first-seen order)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows), restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    """The rows as a GitHub-flavoured Markdown table (pipes in cells escaped)."""
    cols = _columns(rows)

    def cell(v: object) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
