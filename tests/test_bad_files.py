"""Malformed and hostile files for every data and weights reader, and bad training/embed flags.

Readers: CIFAR-10 batches (payloads, truncation, wrong types), folder corpora (16-bit and
float images, bombs, empty paths, broken links, zero-byte and damaged files, limits),
weights files (truncated, wrong shapes, NaN, absurd metadata, manifest mismatch).  Each
library case expects one NPSError line; each CLI case expects exit 2, exactly one
stderr line starting ``error:`` and no traceback.  Fixtures are tiny and written into
tmp_path; training runs are a handful of steps on ``digits``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nps.corpora as corpora
import nps.corpora.image_folder as image_folder
from nps import shipped
from nps.cli import main
from nps.corpora import load_corpus, read_cifar_batches
from nps.errors import NPSError

ROOT = Path(__file__).resolve().parents[1]


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals are one line too (nps.cli.OneLineParser)
        code = exc.code
    return one_line(code, capsys.readouterr().err)


def single_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip()
    return msg


# =========================================================================== CIFAR-10 batches

def good_batch(n: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)], b"filenames": [b"a.png"] * n}


def write_batches(folder: Path, train: dict | bytes, test: dict | bytes | None = None, protocol: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in (("data_batch_1", train), ("test_batch", test if test is not None else good_batch(seed=1))):
        data = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=protocol)
        (folder / name).write_bytes(data)
    return folder


class SystemPayload:
    """Pickles as a call to os.system that would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import builtins
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("payload", [SystemPayload, ExecPayload])
def test_cifar_batch_with_a_payload_is_refused_and_nothing_runs(tmp_path: Path, protocol: int, payload: type) -> None:
    marker = tmp_path / "pwned"
    batch = good_batch()
    batch[b"labels"] = payload(marker)
    folder = write_batches(tmp_path / "cifar-10-batches-py", batch, protocol=protocol)
    with pytest.raises(NPSError, match=r"data_batch_1 is not a CIFAR-10 batch") as exc:
        read_cifar_batches(folder)
    assert "refused to load global" in single_line(exc)
    assert not marker.exists()


def test_the_payload_fixture_really_would_run(tmp_path: Path) -> None:
    """Guards the test above: the same bytes do run code under plain pickle."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps({b"labels": SystemPayload(marker)}, protocol=2))
    assert marker.exists()


def test_cifar_payload_via_the_cli_exits_2_in_a_subprocess(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = good_batch()
    batch[b"data"] = SystemPayload(marker)
    write_batches(tmp_path / "cifar-10-batches-py", batch)
    proc = subprocess.run([sys.executable, "-m", "nps", "embed", "--corpus", "cifar10", "--data-root", str(tmp_path),
                           "--encoder", "pixels", "--out", str(tmp_path / "e.npz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    one_line(proc.returncode, proc.stderr)
    assert "not a CIFAR-10 batch" in proc.stderr
    assert not marker.exists() and not (tmp_path / "e.npz").exists()


def test_numpy_globals_cannot_be_called_directly(tmp_path: Path) -> None:
    """ndarray(shape, buffer=..., strides=...) or a subclass in _reconstruct are refused too."""
    from nps.corpora.safe_pickle import loads_restricted
    direct = b"cnumpy\nndarray\n(I10\ntR."  # protocol 0: ndarray(10)
    with pytest.raises(TypeError):
        loads_restricted(direct)
    subclass = b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nmemmap\n(I0\ntc_codecs\nencode\n(Vb\nVlatin1\ntRtR."
    with pytest.raises(pickle.UnpicklingError, match=r"numpy.memmap"):
        loads_restricted(subclass)
    huge = b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I1000000000000\ntVb\ntR."
    with pytest.raises(pickle.UnpicklingError, match=r"shape"):
        loads_restricted(huge)


@pytest.mark.parametrize("protocol", [2, 5])
def test_genuine_layouts_still_load(tmp_path: Path, protocol: int) -> None:
    train, test = good_batch(6, seed=2), good_batch(3, seed=3)
    folder = write_batches(tmp_path / "c", train, test, protocol=protocol)
    x, y, xt, _yt = read_cifar_batches(folder)
    assert x.shape == (6, 32, 32, 3) and xt.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, train[b"labels"])
    np.testing.assert_array_equal(x[1, 2, 3], train[b"data"][1, [2 * 32 + 3, 1024 + 2 * 32 + 3, 2048 + 2 * 32 + 3]])


def test_numpy_1x_module_names_load(tmp_path: Path) -> None:
    """Official batches were pickled by old numpy: ``numpy.core.multiarray._reconstruct``."""
    raw = pickle.dumps(good_batch(), protocol=2)
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != raw
    folder = write_batches(tmp_path / "c", old)
    assert read_cifar_batches(folder)[0].shape == (4, 32, 32, 3)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda b: pickle.dumps(b, protocol=2)[:200], "not a CIFAR-10 batch"),                     # truncated
    (lambda b: b"", "not a CIFAR-10 batch"),                                                  # empty file
    (lambda b: pickle.dumps([b[b"data"], b[b"labels"]]), "not a dict"),                        # a list
    (lambda b: pickle.dumps({**b, b"data": b[b"data"].astype(np.float32)}), "expected uint8"),
    (lambda b: pickle.dumps({**b, b"data": b[b"data"].tobytes()}), "expected uint8"),
    (lambda b: pickle.dumps({**b, b"labels": ["cat"] * 4}), "list of integers"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1, 2, 10]}), "expected 0..9"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1, 2, -1]}), "expected 0..9"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1, 2, 2**70]}), "not a CIFAR-10 batch"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1]}), "2 labels for 4 images"),
    (lambda b: pickle.dumps({b"data": b[b"data"]}), "data/labels"),
    (lambda b: pickle.dumps({**b, b"labels": np.array(["a"] * 4, object)}), "list of integers"),
    (lambda b: b"\x80\x05" + b"(" * 100_000, "not a CIFAR-10 batch"),                          # deep nesting
])
def test_malformed_cifar_batches_give_one_line(tmp_path: Path, mutate, needle: str) -> None:
    folder = write_batches(tmp_path / "c", mutate(good_batch()))
    with pytest.raises(NPSError, match=needle) as exc:
        read_cifar_batches(folder)
    assert "data_batch_1" in single_line(exc)


def test_oversized_cifar_batch_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_batches(tmp_path / "c", good_batch())
    monkeypatch.setattr(corpora.cifar, "MAX_CIFAR_BATCH_BYTES", 1000)  # the fixture's batch is ~13 KB
    with pytest.raises(NPSError, match="more than 1,000"):
        read_cifar_batches(folder)


def test_malformed_cifar_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_batches(tmp_path / "cifar-10-batches-py", pickle.dumps(good_batch())[:100])
    err = run_cli(["embed", "--corpus", "cifar10", "--data-root", str(tmp_path), "--encoder", "pixels",
                   "--out", str(tmp_path / "e.npz")], capsys)
    assert "not a CIFAR-10 batch" in err and not (tmp_path / "e.npz").exists()


# =========================================================================== folder corpora

def folder_with(root: Path, files: dict[str, object]) -> Path:
    """Write root/<class>/<name>: PIL images, raw bytes, or callables that make the entry."""
    from PIL import Image
    for rel, what in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, Image.Image):
            what.save(path)
        elif isinstance(what, bytes):
            path.write_bytes(what)
    return root


def gray(v: int = 100, size: int = 8):
    from PIL import Image
    return Image.fromarray(np.full((size, size), v, np.uint8))


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    from PIL import Image
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)  # 0..65535
    im = Image.fromarray(ramp)  # uint16 -> mode I;16
    assert im.mode == "I;16"
    root = folder_with(tmp_path / "f", {"a/ramp.png": im, "a/z.png": gray(), "b/x.png": gray(5, 16)})
    with Image.open(root / "a" / "ramp.png") as check:
        assert check.mode in ("I;16", "I")  # really stored as 16 bits
    (x, _y, _xt, _yt), _ = image_folder.read_image_folder(root, size=16, test_fraction=0)
    got = x[0]
    want = np.arange(256).reshape(16, 16).astype(np.uint8)  # v*257 scaled back by 255/65535 is v
    np.testing.assert_array_equal(got, want)
    assert (got == 255).mean() < 0.01  # Pillow's convert("L") made 99.6 % of such pixels 255
    corpus = load_corpus(f"folder:{root}", image_size=16, color=True)
    assert corpus.train.shape[-1] == 3


def test_32_bit_and_float_images(tmp_path: Path) -> None:
    from PIL import Image
    f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    root = folder_with(tmp_path / "f", {"a/f.tif": Image.fromarray(f), "b/g.png": gray()})
    (x, *_), _ = image_folder.read_image_folder(root, size=8, test_fraction=0)
    np.testing.assert_array_equal(x[0], np.rint(f.astype(np.float64) * 255).astype(np.uint8))
    bad = folder_with(tmp_path / "g", {"a/f.tif": Image.fromarray(f * 1000)})
    with pytest.raises(NPSError, match=r"outside 0..1") as exc:
        image_folder.read_image_folder(bad)
    single_line(exc)
    neg = folder_with(tmp_path / "h", {"a/i.tif": Image.fromarray(np.full((4, 4), -5, np.int32))})
    with pytest.raises(NPSError, match=r"outside 0..65535"):
        image_folder.read_image_folder(neg)


def test_oversized_image_is_refused_from_its_header(tmp_path: Path) -> None:
    from PIL import Image
    big = Image.new("L", (6000, 5000))  # 30 Mpx, a few KB as PNG
    root = folder_with(tmp_path / "f", {"a/big.png": big, "a/ok.png": gray()})
    with pytest.raises(NPSError, match=r"big.png' is 6000x5000 pixels") as exc:
        image_folder.read_image_folder(root)
    single_line(exc)


@pytest.mark.parametrize("limit", [20, 40])  # 8x8 = 64 px: over 2x the limit (Pillow raises), over 1x (it warns)
def test_decompression_bombs_give_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    from PIL import Image
    root = folder_with(tmp_path / "f", {"a/bomb.png": gray()})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(NPSError, match=r"decompression bomb") as exc:
        image_folder.read_image_folder(root)
    assert "bomb.png" in single_line(exc)


@pytest.mark.parametrize("spec", ["folder:", "folder:   ", " folder: "])
def test_empty_folder_path_is_refused(spec: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(NPSError, match=r"needs a path"):
        load_corpus(spec)
    err = run_cli(["embed", "--corpus", spec, "--encoder", "pixels", "--out", str(tmp_path / "e.npz")], capsys)
    assert "needs a path" in err


def test_malformed_folder_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {}
    root = folder_with(tmp_path / "zero", {"a/ok.png": gray(), "a/z.png": b""})
    cases["zero-byte"] = (root, "z.png' is an empty")
    root = folder_with(tmp_path / "trunc", {"a/ok.png": gray()})
    (root / "a" / "t.png").write_bytes((root / "a" / "ok.png").read_bytes()[:40])
    cases["truncated"] = (root, "cannot read image .*t.png")
    root = folder_with(tmp_path / "junk", {"a/j.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64})
    cases["junk"] = (root, "cannot read image .*j.png")
    root = folder_with(tmp_path / "loop", {"a/ok.png": gray()})
    os.symlink(root / "loop", root / "loop")
    cases["symlink loop"] = (root, "link loop")
    root = folder_with(tmp_path / "dangling", {"a/ok.png": gray()})
    os.symlink(tmp_path / "nowhere", root / "b")
    cases["dangling link"] = (root, "broken symbolic link")
    root = tmp_path / "noimages"
    (root / "a").mkdir(parents=True)
    (root / "a" / "notes.txt").write_text("x")
    cases["no images"] = (root, "no readable images")
    for name, (folder, needle) in cases.items():
        with pytest.raises(NPSError, match=needle) as exc:
            image_folder.read_image_folder(folder)
        assert single_line(exc), name


def test_unreadable_class_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = folder_with(tmp_path / "f", {"a/ok.png": gray(), "b/ok.png": gray()})
    real = Path.iterdir

    def iterdir(self: Path):  # root cannot drop its own read permission, so simulate it
        if self.name == "b":
            raise PermissionError(13, "Permission denied")
        return real(self)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(NPSError, match=r"cannot list folder .*b' \(Permission denied\)") as exc:
        image_folder.read_image_folder(root)
    single_line(exc)


def test_folder_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = folder_with(tmp_path / "f", {f"c{i}/x.png": gray() for i in range(4)})
    monkeypatch.setattr(image_folder, "MAX_CLASSES", 3)
    with pytest.raises(NPSError, match=r"4 class subfolders \(at most 3\)"):
        image_folder.read_image_folder(root)
    monkeypatch.setattr(image_folder, "MAX_CLASSES", 1000)
    monkeypatch.setattr(image_folder, "MAX_FILES", 3)
    with pytest.raises(NPSError, match=r"more than 3 images"):
        image_folder.read_image_folder(root)
    for size in (0, -1, 100_000):
        with pytest.raises(NPSError, match=r"image size"):
            load_corpus(f"folder:{root}", image_size=size)


def test_malformed_folder_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = folder_with(tmp_path / "f", {"a/ok.png": gray(), "a/z.png": b""})
    err = run_cli(["embed", "--corpus", f"folder:{root}", "--encoder", "pixels", "--out", str(tmp_path / "e.npz")],
                  capsys)
    assert "empty (zero-byte)" in err


# =========================================================================== weights files

@pytest.fixture
def tiny_simclr(tmp_path: Path, digits) -> Path:
    from nps.encoders.simclr import save_weights
    from nps.encoders.train import TrainConfig, build_model, weights_meta
    cfg = TrainConfig(epochs=1, batch_size=8)
    model = build_model(digits.image_shape, cfg)
    path = tmp_path / "w" / "simclr-digits.safetensors"
    save_weights(path, model.backbone, weights_meta(digits, cfg, model))
    return path


@pytest.fixture
def tiny_classifier(tmp_path: Path, digits_small) -> Path:
    from nps.metrics.classifier import train_classifier
    clf = train_classifier(digits_small, epochs=1, batch_size=64, input_size=8)
    return clf.save(tmp_path / "c" / "classifier-digits.safetensors")


def rewrite_safetensors(src: Path, dst: Path, change) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(src))
    meta = change(state, meta) or meta
    save_file(state, str(dst), metadata=meta)
    return dst


def test_weights_files_malformed(tiny_simclr: Path, tiny_classifier: Path, tmp_path: Path, digits) -> None:
    import torch

    from nps.encoders.simclr import SimCLREncoder
    from nps.metrics.classifier import Classifier

    def nan(state: dict, meta: dict) -> None:
        next(v for v in state.values() if v.is_floating_point()).view(-1)[0] = float("nan")

    def wrong_shape(state: dict, meta: dict) -> None:
        key = next(iter(state))
        state[key] = torch.zeros(2, 2)

    def wide(state: dict, meta: dict) -> dict:
        return {**meta, "width": json.dumps(10**6)}

    def shape_meta(state: dict, meta: dict) -> dict:
        return {**meta, "image_shape": json.dumps(5)}

    def classes(state: dict, meta: dict) -> dict:
        info = json.loads(meta["nps"])
        return {"nps": json.dumps({**info, "n_classes": 10**9})}

    for src, load in ((tiny_simclr, lambda p: SimCLREncoder(p).fit(digits)), (tiny_classifier, Classifier.load)):
        cases = [(tmp_path / "trunc.safetensors", "cannot read")]
        cases[0][0].write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        empty = tmp_path / "empty.safetensors"
        empty.write_bytes(b"")
        cases.append((empty, "cannot read"))
        cases.append((rewrite_safetensors(src, tmp_path / "nan.safetensors", nan), "NaN or inf"))
        cases.append((rewrite_safetensors(src, tmp_path / "shape.safetensors", wrong_shape), "do not (match|fit)"))
        cases.append((rewrite_safetensors(src, tmp_path / "big.safetensors",
                                          wide if src == tiny_simclr else classes), "do not (match|fit)"))
        if src == tiny_simclr:
            cases.append((rewrite_safetensors(src, tmp_path / "meta.safetensors", shape_meta), "do not match"))
            bad_json = rewrite_safetensors(src, tmp_path / "json.safetensors", lambda s, m: {**m, "width": "{"})
            cases.append((bad_json, "cannot read"))
        for path, needle in cases:
            with pytest.raises(NPSError, match=needle) as exc:
                load(path)
            assert path.name in single_line(exc), needle


def test_non_finite_weights_are_never_written(tmp_path: Path, digits) -> None:
    import torch

    from nps.encoders.simclr import save_weights
    from nps.encoders.train import TrainConfig, build_model, weights_meta
    cfg = TrainConfig()
    model = build_model(digits.image_shape, cfg)
    with torch.no_grad():
        next(model.backbone.parameters()).view(-1)[0] = float("inf")
    out = tmp_path / "w.safetensors"
    with pytest.raises(NPSError, match=r"NaN or inf"):
        save_weights(out, model.backbone, weights_meta(digits, cfg, model))
    assert not out.exists()


def test_non_finite_embeddings_are_refused(digits) -> None:
    from nps.encoders.base import Encoder

    class Broken(Encoder):
        name = "broken"
        dim = 3

        def _encode(self, images: np.ndarray) -> np.ndarray:
            out = np.ones((len(images), 3), np.float32)
            out[1, 2] = np.nan
            return out
    with pytest.raises(NPSError, match=r"non-finite embeddings for 1 of 5 images") as exc:
        Broken().encode(digits.train[:5])
    single_line(exc)


def test_non_finite_losses_stop_training(digits_small, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import nps.encoders.train as train
    from nps.metrics.classifier import Classifier
    cfg = train.TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=2, monitor_train=0, warmup_steps=1)
    monkeypatch.setattr(train, "nt_xent", lambda z1, z2, t: (z1.sum() + z2.sum()) * float("nan"))
    with pytest.raises(NPSError, match=r"SimCLR loss became nan at epoch 1, step 1") as exc:
        train.train_simclr(digits_small, cfg, progress=False)
    single_line(exc)
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda out, y: out.sum() * float("nan"))
    with pytest.raises(NPSError, match=r"classifier loss became nan"):
        Classifier(epochs=1, batch_size=64, input_size=8).fit(digits_small.train, digits_small.train_labels)


# --------------------------------------------------------------------------- the manifest

def test_the_real_manifest_covers_every_shipped_file() -> None:
    files = shipped.read_manifest()
    on_disk = {p.name for p in shipped.WEIGHTS_DIR.iterdir() if p.name != shipped.MANIFEST_NAME}
    assert set(files) == on_disk and any(n.endswith(".safetensors") for n in files)
    for name, entry in files.items():
        path = shipped.WEIGHTS_DIR / name
        assert shipped.manifest_entry(path) == entry, f"{name} changed; restore it or update the manifest"
        if name.endswith(".safetensors"):
            shipped.verify_shipped(path)
    import tomllib
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["nps"]
    assert "weights/*.json" in globs and "weights/*.safetensors" in globs  # MANIFEST.json ships as package data


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty stand-in for nps/weights/ with an empty manifest."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", folder)
    shipped.write_manifest({})
    return folder


def ship(path: Path) -> Path:
    """Install ``path`` into the stand-in shipped folder and list it in the manifest."""
    dst = shipped.WEIGHTS_DIR / path.name
    shutil.copyfile(path, dst)
    files = shipped.read_manifest()
    files[dst.name] = shipped.manifest_entry(dst)
    shipped.write_manifest(files)
    return dst


def test_manifest_mismatch_names_the_file_and_the_fix(weights_dir: Path, tiny_simclr: Path, tiny_classifier: Path,
                                                      digits, capsys: pytest.CaptureFixture[str],
                                                      cache_dir: Path) -> None:
    from nps.encoders import get_encoder
    from nps.metrics.classifier import load_classifier
    s, c = ship(tiny_simclr), ship(tiny_classifier)
    assert get_encoder("simclr", digits).origin_ == "shipped"
    assert load_classifier("digits").meta_["corpus"] == "digits"
    for path in (s, c):
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x01  # one bit in the last tensor
        path.write_bytes(bytes(data))
    with pytest.raises(NPSError, match=r"do not match their sha256") as exc:
        get_encoder("simclr", digits)
    assert f"git checkout -- {s}" in single_line(exc)
    with pytest.raises(NPSError, match=r"classifier-digits.safetensors' do not match"):
        load_classifier("digits")
    err = run_cli(["embed", "--corpus", "digits", "--encoder", "simclr", "--out", str(cache_dir / "e.npz")], capsys)
    assert "git checkout --" in err and "simclr-digits.safetensors" in err
    from nps.encoders.simclr import weights_status
    status, detail = weights_status("digits")
    assert status == "invalid" and "sha256" in detail


def test_unlisted_or_unverifiable_shipped_files(weights_dir: Path, tiny_simclr: Path, digits) -> None:
    from nps.encoders import get_encoder
    shutil.copyfile(tiny_simclr, weights_dir / tiny_simclr.name)  # dropped in, not in the manifest
    with pytest.raises(NPSError, match=r"not listed in MANIFEST.json"):
        get_encoder("simclr", digits)
    (weights_dir / shipped.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(NPSError, match=r"manifest .* is damaged"):
        get_encoder("simclr", digits)
    (weights_dir / shipped.MANIFEST_NAME).unlink()
    with pytest.raises(NPSError, match=r"manifest .* is missing"):
        get_encoder("simclr", digits)


def test_digest_is_computed_once_per_process(tiny_simclr: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nps.cache
    calls = []
    real = nps.cache.file_sha256
    monkeypatch.setattr(nps.cache, "file_sha256", lambda p: calls.append(p) or real(p))
    assert shipped.file_digest(tiny_simclr) == shipped.file_digest(tiny_simclr) == real(tiny_simclr)
    assert len(calls) == 1


def test_lookup_order_shipped_then_trained(weights_dir: Path, tiny_simclr: Path, cache_dir: Path, digits) -> None:
    from nps.encoders.simclr import SimCLREncoder, trained_path, weights_status
    assert weights_status("digits")[0] == "absent"
    trained = trained_path("digits")
    trained.parent.mkdir(parents=True)
    shutil.copyfile(tiny_simclr, trained)
    enc = SimCLREncoder().fit(digits)
    assert enc.origin_ == "trained" and enc.weights_path_ == trained and weights_status("digits")[0] == "trained"
    ship(tiny_simclr)
    enc = SimCLREncoder().fit(digits)
    assert enc.origin_ == "shipped" and enc.weights_path_.parent == weights_dir
    assert weights_status("digits")[0] == "shipped"


# =========================================================================== training and embed flags

TRAIN_ENCODER_BAD = [
    ["--temperature", "0"], ["--temperature", "nan"], ["--temperature", "-1"], ["--temperature", "inf"],
    ["--lr", "nan"], ["--lr", "-1"], ["--lr", "0"], ["--lr", "inf"], ["--lr", "5"],
    ["--epochs", "0"], ["--epochs", "-3"], ["--epochs", "1000000"],
    ["--batch-size", "1"], ["--batch-size", "0"], ["--batch-size", "100000"],
    ["--width", "0"], ["--width", "1000000"], ["--aug-group", "0"],
    ["--seed", "-1"], ["--seed", str(2**40)], ["--threads", "0"], ["--threads", "-2"],
    ["--probe-max-train", "0"], ["--subset", "0"], ["--device", "tpu"], ["--device", "cuda:x"],
    ["--replace-shipped", "--out", "{tmp}/w.safetensors"],
    ["--out", "{tmp}/missing/w.safetensors"], ["--out", "{tmp}/w.npz"],
    ["--out", str(shipped.WEIGHTS_DIR / "simclr-digits.safetensors")],
    ["--checkpoint", "{tmp}/missing/ck.pt"],
]
TRAIN_CLASSIFIER_BAD = [
    ["--lr", "nan"], ["--lr", "-1"], ["--lr", "0"], ["--epochs", "0"], ["--epochs", "100000"],
    ["--batch-size", "0"], ["--seed", "-1"], ["--threads", "0"], ["--subset", "0"],
    ["--replace-shipped", "--out", "{tmp}/c.safetensors"], ["--out", "{tmp}/missing/c.safetensors"],
    ["--out", str(shipped.WEIGHTS_DIR / "classifier-mnist.safetensors")],
]
EMBED_BAD = [
    ["--k", "0"], ["--k", "1000000000"], ["--nprobe", "0"], ["--ef-search", "0"], ["--nlist", "0"],
    ["--nlist", "100000000"], ["--encoder", "nope"], ["--device", "tpu"], ["--subset", "0"],
]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command starts loading data: bad flags must be refused first."""
    def refuse(*a, **k):
        raise AssertionError("the corpus was loaded before the flags were checked")
    monkeypatch.setattr(corpora, "load_corpus", refuse)


@pytest.mark.parametrize("flags", TRAIN_ENCODER_BAD, ids=" ".join)
def test_train_encoder_refuses_bad_flags_before_any_work(flags: list[str], tmp_path: Path, no_work: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train-encoder", "--corpus", "digits", *[f.replace("{tmp}", str(tmp_path)) for f in flags]]
    if "--out" not in flags:
        argv += ["--out", str(tmp_path / "w.safetensors")]
    run_cli(argv, capsys)
    assert not list(tmp_path.glob("*.safetensors"))


def test_cuda_without_cuda_is_one_line(tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run_cli(["train-encoder", "--corpus", "digits", "--device", "cuda", "--out", str(tmp_path / "w.safetensors")],
            capsys)


def test_replace_shipped_needs_a_named_corpus(tmp_path: Path, no_work: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    err = run_cli(["train-encoder", "--corpus", f"folder:{tmp_path}", "--replace-shipped"], capsys)
    assert "named corpora" in err


@pytest.mark.parametrize("flags", TRAIN_CLASSIFIER_BAD, ids=" ".join)
def test_train_classifier_refuses_bad_flags_before_any_work(flags: list[str], tmp_path: Path, no_work: None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train-classifier", "--corpus", "digits", *[f.replace("{tmp}", str(tmp_path)) for f in flags]]
    if "--out" not in flags:
        argv += ["--out", str(tmp_path / "c.safetensors")]
    run_cli(argv, capsys)


@pytest.mark.parametrize("flags", EMBED_BAD, ids=" ".join)
def test_embed_refuses_bad_flags(flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["embed", "--corpus", "digits", "--encoder", "pixels", "--index", "ivf", *flags,
             "--out", str(tmp_path / "e.npz")], capsys)
    assert not list(tmp_path.iterdir())  # no output and no temp file left behind


@pytest.mark.parametrize("out", ["{tmp}/missing/e.npz", "{tmp}/adir.npz", "/proc/nps-test-e.npz", "{tmp}/e.txt"])
def test_embed_out_unwritable_before_any_work(out: str, tmp_path: Path, no_work: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "adir.npz").mkdir()
    run_cli(["embed", "--corpus", "digits", "--encoder", "pixels", "--out", out.replace("{tmp}", str(tmp_path))],
            capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npz"]


# =========================================================================== default outputs

def test_train_encoder_writes_to_the_cache_and_the_lookup_finds_it(cache_dir: Path, digits,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in shipped.WEIGHTS_DIR.iterdir()}
    assert main(["train-encoder", "--corpus", "digits", "--subset", "100", "--epochs", "1", "--batch-size", "50",
                 "--threads", "1", "--no-eval"]) == 0
    out = cache_dir / "weights" / "simclr-digits.safetensors"
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert "is now the simclr used for digits" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in shipped.WEIGHTS_DIR.iterdir()} == before
    from nps.encoders import get_encoder
    from nps.encoders.simclr import weights_status
    enc = get_encoder("simclr", digits)
    assert enc.origin_ == "trained" and enc.weights_path_ == out
    assert weights_status("digits")[0] == "trained"


def test_replace_shipped_installs_and_updates_the_manifest(weights_dir: Path, cache_dir: Path, digits,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-encoder", "--corpus", "digits", "--subset", "100", "--epochs", "1", "--batch-size", "50",
                 "--threads", "1", "--no-eval", "--replace-shipped"]) == 0
    assert "replaced the shipped simclr-digits.safetensors" in capsys.readouterr().out
    assert set(shipped.read_manifest()) == {"simclr-digits.safetensors", "simclr-digits.json"}
    from nps.encoders import get_encoder
    assert get_encoder("simclr", digits).origin_ == "shipped"


def test_train_classifier_writes_to_the_cache_and_load_classifier_uses_it(cache_dir: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-classifier", "--corpus", "digits", "--subset", "200", "--epochs", "1"]) == 0
    out = cache_dir / "weights" / "classifier-digits.safetensors"
    assert out.is_file() and out.with_suffix(".json").is_file()
    from nps.metrics.classifier import load_classifier
    clf = load_classifier("digits")
    assert clf.meta_["n_train"] == 200  # the trained file, not the on-the-fly one (all 1442 images)
    shipped.verify_shipped(shipped.WEIGHTS_DIR / "classifier-mnist.safetensors")  # untouched


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = folder_with(tmp_path / "f", {"a/ok.png": gray(), "a/bad\nname.png": b"junk"})
    err = run_cli(["embed", "--corpus", f"folder:{root}", "--encoder", "pixels", "--out", str(tmp_path / "e.npz")],
                  capsys)
    assert "bad\\nname.png" in err


@pytest.mark.parametrize("damage", ["shipped, one byte changed", "trained, one NaN"])
def test_generate_refuses_damaged_simclr_weights(damage: str, weights_dir: Path, tiny_simclr: Path, cache_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: one NaN in the weights made every embedding NaN while generate reported success."""
    from nps.encoders.simclr import trained_path

    def nan(state: dict, meta: dict) -> None:
        next(v for v in state.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    if damage.startswith("shipped"):
        path = ship(tiny_simclr)
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x01
        path.write_bytes(bytes(data))
        needle = "do not match their sha256"
    else:
        trained_path("digits").parent.mkdir(parents=True, exist_ok=True)
        rewrite_safetensors(tiny_simclr, trained_path("digits"), nan)
        needle = "NaN or inf"
    out = cache_dir / "g.npz"
    err = run_cli(["generate", "--corpus", "digits", "--encoder", "simclr", "--n", "1", "--out", str(out)], capsys)
    assert needle in err and not out.exists()


@pytest.mark.parametrize("content", ["garbage", "truncated", "a list"])
def test_damaged_checkpoint_with_resume(content: str, tmp_path: Path, digits_small,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    import nps.encoders.train as train
    ckpt = tmp_path / "ck.pt"
    cfg = train.TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=1, monitor_train=0, warmup_steps=1)
    if content == "garbage":
        ckpt.write_bytes(b"not a checkpoint")
    elif content == "truncated":
        train.train_simclr(digits_small, cfg, checkpoint=ckpt, progress=False)
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    else:
        torch.save([1, 2, 3], ckpt)
    with pytest.raises(NPSError, match=r"checkpoint .*(damaged|not a training checkpoint)") as exc:
        train.train_simclr(digits_small, cfg, checkpoint=ckpt, resume=True, progress=False)
    single_line(exc)
    err = run_cli(["train-encoder", "--corpus", "digits", "--subset", "200", "--resume", "--checkpoint", str(ckpt),
                   "--out", str(tmp_path / "w.safetensors")], capsys)
    assert "checkpoint" in err and not (tmp_path / "w.safetensors").exists()
