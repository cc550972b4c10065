"""The record contract (issue 9, items 1, 4, 5): one validator, a v2 row map, no data roots from records.

* every malformed-but-loadable record is one NPSError line from ``from_arrays`` (the
  path of the CLI and of the app's uploads);
* a ``--subset`` record carries ``train_ids`` and checks against the full corpus alone;
  version-1 records are still read;
* a record's ``data_root`` and ``folder:`` corpus never choose what is read.
"""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

from nps.cli import main
from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.provenance import (
    check_provenance,
    check_provenance_full,
    full_source_index,
)
from nps.record import (
    RECORD_VERSION,
    ProvenanceRecord,
    merge,
)

TINY = dict(corpus="digits", window=3, seed_size=2, k=8, n=3, batch_size=3, seed=4)


@pytest.fixture(scope="module")
def full_record(digits):
    from nps.engine.sampler import generate
    return generate(GenerationConfig(**TINY), digits)


@pytest.fixture(scope="module")
def subset_record():
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    sub = load_corpus("digits", subset=300)
    return generate(GenerationConfig(**TINY, subset=300), sub), sub


def _arrays(record: ProvenanceRecord) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in record.to_arrays().items()}


# ----------------------------------------------------------------------------- version 2: the row map

def test_subset_record_checks_against_the_full_corpus_alone(subset_record, digits, tmp_path):
    rec, sub = subset_record
    assert rec.version == RECORD_VERSION == 3 and rec.train_ids is not None and len(rec.train_ids) == 300
    back = ProvenanceRecord.load(rec.save(tmp_path / "s.npz"))
    assert np.array_equal(back.train_ids, rec.train_ids)
    # Subset ids are rows of the subset; the row map turns them into full-corpus ids, exactly.
    full = full_source_index(back)
    assert np.array_equal(digits.train[full, back.source_y, back.source_x], back.images)
    assert check_provenance(back, sub.train) == 0 and check_provenance_full(back, digits.train) == 0
    # Without the row map the subset ids, read as full-corpus ids, mostly break the invariant.
    assert not np.array_equal(full, back.source_index)
    wrong = ProvenanceRecord(**{**back.__dict__, "train_ids": np.arange(300, dtype=np.int64)})
    assert check_provenance_full(wrong, digits.train) > 0


def test_full_corpus_record_needs_no_row_map(full_record, digits, tmp_path):
    back = ProvenanceRecord.load(full_record.save(tmp_path / "f.npz"))
    assert back.train_ids is None and "train_ids" not in np.load(tmp_path / "f.npz").files
    assert np.array_equal(full_source_index(back), back.source_index)
    assert check_provenance_full(back, digits.train) == 0


def test_version_1_records_are_still_read(subset_record, full_record):
    rec, _ = subset_record
    arrays = _arrays(rec)
    arrays["record_version"] = np.array(1, np.int64)
    del arrays["train_ids"]
    old = ProvenanceRecord.from_arrays(arrays)
    assert old.version == 1 and old.train_ids is None
    assert int(old.to_arrays()["record_version"]) == 1  # re-saving does not claim a row map it lacks
    with pytest.raises(NPSError, match="version-1 record of a --subset run"):
        full_source_index(old)
    arrays = _arrays(full_record)
    del arrays["record_version"]  # the oldest records had no version key
    assert ProvenanceRecord.from_arrays(arrays).config == full_record.config


def test_merge_and_select_keep_the_row_map(subset_record):
    from nps.engine.sampler import generate
    rec, sub = subset_record
    more = generate(GenerationConfig(**TINY, subset=300), sub, sample_ids=np.arange(3, 5))
    merged = merge([rec, more])
    assert np.array_equal(merged.train_ids, rec.train_ids) and len(merged) == 5
    assert np.array_equal(merged.select([0]).train_ids, rec.train_ids)
    other = ProvenanceRecord(**{**more.__dict__, "train_ids": more.train_ids + 1})
    with pytest.raises(NPSError, match="different corpus subsets"):
        merge([rec, other])


# ----------------------------------------------------------------------------- the validator

def _mutations(rec: ProvenanceRecord) -> dict[str, dict]:
    """name -> arrays of a malformed record (each loadable by np.load, each breaking one rule)."""
    a = _arrays(rec)
    n, h, _ = rec.source_index.shape
    cfg = rec.config

    def with_(**kw):
        return {**a, **{k: (np.asarray(v) if v is not None else None) for k, v in kw.items()}}

    dup = a["order"].copy()
    dup[-1] = dup[0]
    shell = a["shell"].copy()
    shell[-1] = 0
    big = a["source_index"].copy()
    big[0, 0, 0] = cfg["corpus_size"] + 5
    neg = a["source_index"].copy()
    neg[0, 0, 0] = -7
    sy = a["source_y"].copy()
    sy[0, 1, 1] = h + 3
    pool = a["pool_size"].copy()
    pool[0, 1, 1] = 0
    out = {
        "float source_index": with_(source_index=a["source_index"].astype(np.float64)),
        "source_index past the corpus": with_(source_index=big),
        "source_index below -1": with_(source_index=neg),
        "source_y outside the canvas": with_(source_y=sy),
        "order repeats a pixel": with_(order=dup),
        "order wrong shape": with_(order=a["order"][:-1]),
        "shell decreasing": with_(shell=shell),
        "pool_size 0 on a copied pixel": with_(pool_size=pool),
        "float images": with_(images=a["images"].astype(np.float32)),
        "int relaxed": with_(relaxed=a["relaxed"].astype(np.int64)),
        "reference out of range": with_(reference=np.full(n, 10**6)),
        "duplicate sample ids": with_(sample_id=np.zeros(n, np.int64)),
        "per-pixel wrong shape": with_(source_x=a["source_x"][:, :-1]),
        "config not JSON": with_(config=np.array("{not json")),
        "config JSON list": with_(config=np.array("[1, 2]")),
        "config NaN": with_(config=np.array(json.dumps({**cfg, "eps": 0.1}).replace("0.1", "NaN", 1))),
        "config field wrong type": with_(config=np.array(json.dumps({**cfg, "window": "7"}))),
        "config unknown constraint": with_(config=np.array(json.dumps({**cfg, "constraints": ["magic"]}))),
        "config not a string": with_(config=np.arange(3)),
        "config corpus_size not int": with_(config=np.array(json.dumps({**cfg, "corpus_size": 1.5}))),
        "config image_shape mismatch": with_(config=np.array(json.dumps({**cfg, "image_shape": [5, 5]}))),
        "record_version from the future": with_(record_version=np.array(99)),
        "record_version not an int": with_(record_version=np.array("two")),
        "train_ids wrong length": with_(train_ids=np.arange(7)),
        "no samples": with_(**{k: a[k][:0] for k in ("images", "reference", "sample_id", "source_index",
                                                      "source_y", "source_x", "source_label", "pool_size",
                                                      "relaxed")}),
    }
    out["missing order"] = {k: v for k, v in a.items() if k != "order"}
    return out




def _names() -> list[str]:
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    return sorted(_mutations(generate(GenerationConfig(**{**TINY, "n": 1}), load_corpus("digits"))))


@pytest.mark.parametrize("name", _names())
def test_malformed_record_is_one_npserror_line(full_record, name):
    arrays = _mutations(full_record)[name]
    with pytest.raises(NPSError) as exc:
        ProvenanceRecord.from_arrays(arrays)
    msg = str(exc.value)
    assert "\n" not in msg and msg


@pytest.mark.parametrize("name", ["float source_index", "config not JSON", "no samples", "order repeats a pixel"])
def test_app_upload_path_validates_fully(full_record, name):
    from app_support.state import record_from_npz_bytes
    buf = io.BytesIO()
    np.savez(buf, **_mutations(full_record)[name])
    with pytest.raises(NPSError):
        record_from_npz_bytes(buf.getvalue())


def test_valid_record_passes_and_keeps_int64(full_record):
    a = _arrays(full_record)
    a["source_index"] = a["source_index"].astype(np.int32)  # any integer width is accepted
    rec = ProvenanceRecord.from_arrays(a)
    assert rec.source_index.dtype == np.int64 and np.array_equal(rec.source_index, full_record.source_index)


# ----------------------------------------------------------------------------- item 1: no data roots from records

class _Payload:
    """Unpickling this creates a marker folder: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        return os.makedirs, (self.marker,)


def _crafted_root(tmp_path):
    root = tmp_path / "crafted"
    batches = root / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    marker = tmp_path / "CODE-RAN"
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (batches / name).write_bytes(pickle.dumps(_Payload(str(marker))))
    (root / "0").mkdir()
    return root, marker


@pytest.mark.parametrize("command", ["evaluate", "trace"])
def test_record_data_root_and_corpus_never_choose_what_is_read(full_record, tmp_path, monkeypatch, capsys,
                                                               command):
    monkeypatch.delenv("NPS_DATA_ROOT", raising=False)
    root, marker = _crafted_root(tmp_path)
    extra = ["--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"] if command == "evaluate" \
        else ["--y", "0", "--x", "0"]
    for corpus in ("cifar10", f"folder:{root}"):
        cfg = {**full_record.config, "corpus": corpus, "data_root": str(root)}
        path = ProvenanceRecord(**{**full_record.__dict__, "config": cfg}).save(tmp_path / "evil.npz")
        assert main([command, str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
        assert not marker.exists()  # nothing in the crafted folder was unpickled
        if corpus.startswith("folder:"):
            assert "--corpus" in err  # the folder is opened only when the user names it
    # The user's own roots are used: the record's data_root is not, even for a named corpus.
    cfg = {**full_record.config, "data_root": "/no/such/folder"}
    path = ProvenanceRecord(**{**full_record.__dict__, "config": cfg}).save(tmp_path / "ok.npz")
    ys, xs = (int(v) for v in full_record.order[-1])
    ok = ["--out", str(tmp_path / "ev2"), "--no-scores", "--no-memorisation"] if command == "evaluate" \
        else ["--y", str(ys), "--x", str(xs)]
    assert main([command, str(path), *ok]) == 0
    capsys.readouterr()


def test_folder_corpus_must_match_the_users_corpus_flag(full_record, tmp_path, capsys):
    cfg = {**full_record.config, "corpus": "folder:/somewhere"}
    path = ProvenanceRecord(**{**full_record.__dict__, "config": cfg}).save(tmp_path / "f.npz")
    assert main(["trace", str(path), "--corpus", "folder:/elsewhere", "--y", "0", "--x", "0"]) == 2
    assert "is not the record's corpus" in capsys.readouterr().err
