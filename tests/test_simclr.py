"""SimCLR encoder: loss, training, reproducibility, weights loading, accuracy floors, CLI.

Training tests use the tiny 8x8 ``digits`` corpus and a handful of steps with one
torch thread.  The accuracy floors of the shipped weights (mnist 0.97, fashion-mnist
0.85 kNN@20) are checked twice: the full-split figure recorded in the JSON beside
each weights file by the training command must meet the floor, and a live
measurement on a fixed class-stratified subset (10,000 train / 2,000 test
images, so the test stays fast) must meet a lower subset floor (see SHIPPED):
kNN with a sixth of the train set reads lower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nps.cli import main
from nps.corpora import Corpus, load_corpus
from nps.encoders import get_encoder
from nps.encoders.augment import colour_augment, glyph_augment, make_augment, to_chw, two_views
from nps.encoders.evaluate import knn_accuracy, knn_predict, linear_probe_accuracy, stratified_rows
from nps.encoders.simclr import SimCLREncoder, load_backbone, save_weights, weights_path
from nps.encoders.train import TrainConfig, build_model, nt_xent, train_simclr, weights_meta
from nps.errors import DataMissingError, NPSError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> Corpus:
    return load_corpus("digits")


def _tiny_cfg(**kw) -> TrainConfig:
    base = {"epochs": 1, "batch_size": 64, "max_steps_per_epoch": 4, "monitor_train": 0, "warmup_steps": 2}
    base.update(kw)
    return TrainConfig(**base)


def _save_tiny(corpus: Corpus, path: Path, seed: int = 0) -> Path:
    """Weights of an untrained (seeded) small CNN for ``corpus``."""
    cfg = _tiny_cfg(seed=seed)
    torch.manual_seed(seed)
    model = build_model(corpus.image_shape, cfg)
    save_weights(path, model.backbone, weights_meta(corpus, cfg, model))
    return path


# ---------------------------------------------------------------- loss and augmentations

def test_nt_xent_matches_a_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    t = 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / t).double()
    want = 0.0
    for i in range(10):
        pos = (i + 5) % 10
        others = [j for j in range(10) if j != i]
        want += -(sim[i, pos] - torch.logsumexp(sim[i, others], 0))
    assert float(nt_xent(z1, z2, t)) == pytest.approx(float(want / 10), rel=1e-5)
    # Matching views score better than shuffled ones.
    assert float(nt_xent(z1, z1 + 0.01, t)) < float(nt_xent(z1, z2, t))


def test_glyph_augment_has_no_flips_and_colour_augment_does() -> None:
    def names(pipe) -> set[str]:
        out = set()
        for t in pipe.transforms:
            out.add(type(t).__name__)
            out |= {type(u).__name__ for u in getattr(t, "transforms", [])}
        return out

    glyph, colour = names(glyph_augment(28)), names(colour_augment(32))
    assert not {"RandomHorizontalFlip", "RandomVerticalFlip"} & glyph
    assert {"RandomResizedCrop", "RandomAffine", "GaussianBlur"} <= glyph
    assert {"RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale"} <= colour
    assert type(make_augment((32, 32, 3)).transforms[1]).__name__ == "RandomHorizontalFlip"
    assert "RandomHorizontalFlip" not in names(make_augment((28, 28), "mnist"))
    garment = names(make_augment((28, 28), "fashion-mnist"))
    assert {"RandomHorizontalFlip", "ColorJitter"} <= garment
    assert "ColorJitter" not in names(make_augment((28, 28), "mnist"))
    with pytest.raises(ValueError, match="recipe"):
        make_augment((28, 28), recipe="sepia")


def test_two_views_differ_and_keep_shape(digits: Corpus) -> None:
    x = to_chw(torch.from_numpy(np.array(digits.train[:16])))
    torch.manual_seed(0)
    a, b = two_views(x, make_augment(digits.image_shape), group=4)
    assert a.shape == b.shape == (16, 1, 8, 8)
    assert a.dtype == torch.float32 and float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    assert not torch.equal(a, b)


# ---------------------------------------------------------------- training

def test_a_few_steps_on_digits_lower_the_loss(digits: Corpus) -> None:
    cfg = _tiny_cfg(batch_size=128, max_steps_per_epoch=12, lr=3e-3, seed=1)
    torch.manual_seed(cfg.seed)
    initial = build_model(digits.image_shape, cfg)  # the same init train_simclr draws
    trained, report = train_simclr(digits, cfg, progress=False)
    torch.manual_seed(123)
    x = to_chw(torch.from_numpy(np.array(digits.train[:256])))
    v1, v2 = two_views(x, make_augment(digits.image_shape), group=8)

    def loss(model) -> float:
        model.train()  # batch statistics, as in training
        with torch.no_grad():
            _, z = model(torch.cat([v1, v2]))
        return float(nt_xent(z[:256], z[256:], cfg.temperature))

    assert loss(trained) < loss(initial) - 0.05
    assert np.isfinite(report["history"][0]["loss"])


def test_training_is_seeded_and_resume_gives_the_same_weights(digits: Corpus, tmp_path: Path) -> None:
    cfg = _tiny_cfg(epochs=2, max_steps_per_epoch=3, seed=3)
    full, rep = train_simclr(digits, cfg, checkpoint=tmp_path / "a.pt", progress=False)
    again, _ = train_simclr(digits, cfg, progress=False)
    ckpt = tmp_path / "b.pt"
    train_simclr(digits, cfg, checkpoint=ckpt, progress=False, stop_after=1)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed, rep2 = train_simclr(digits, cfg, checkpoint=ckpt, resume=True, progress=False)
    sd_full, sd_again, sd_resumed = full.state_dict(), again.state_dict(), resumed.state_dict()
    for k in sd_full:
        assert torch.equal(sd_full[k], sd_again[k]), k
        assert torch.equal(sd_full[k], sd_resumed[k]), k
    assert [h["loss"] for h in rep["history"]] == [h["loss"] for h in rep2["history"]]
    # A checkpoint from another config is refused.
    with pytest.raises(NPSError, match="different config"):
        train_simclr(digits, _tiny_cfg(epochs=2, max_steps_per_epoch=3, seed=4), checkpoint=ckpt, resume=True,
                     progress=False)


def test_resnet18_path_runs_on_tiny_colour_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8, dtype=np.int64) % 2
    corpus = Corpus("tiny-colour", imgs, labels, imgs[:4], labels[:4], ("a", "b"))
    # The full-width network only runs forward (cheap); a narrow one (same block layout) trains.
    full = build_model(corpus.image_shape, _tiny_cfg()).backbone.eval()
    with torch.no_grad():
        assert full(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
    assert sum(p.numel() for p in full.parameters()) > 11_000_000  # ResNet-18 size
    cfg = _tiny_cfg(batch_size=4, max_steps_per_epoch=2, width=8)
    model, report = train_simclr(corpus, cfg, progress=False)
    assert type(model.backbone).__name__ == "CifarResNet18"
    assert len(report["history"]) == 1 and np.isfinite(report["history"][0]["loss"])
    path = tmp_path / "simclr-tiny.safetensors"
    save_weights(path, model.backbone, weights_meta(corpus, cfg, model))
    emb = SimCLREncoder(path).fit(corpus).encode(imgs)
    assert emb.shape == (8, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------- the encoder

@pytest.mark.parametrize("readout", ["avg", "max"])
def test_readout_is_stored_with_the_weights(readout: str, digits: Corpus, tmp_path: Path) -> None:
    cfg = _tiny_cfg(readout=readout)
    model = build_model(digits.image_shape, cfg)
    path = tmp_path / "w.safetensors"
    save_weights(path, model.backbone, weights_meta(digits, cfg, model))
    net, meta = load_backbone(path)
    assert meta["readout"] == readout and net.readout == readout
    model.backbone.eval()
    x = torch.from_numpy(np.array(digits.train[:5], np.float32)[:, None] / 255.0)
    with torch.no_grad():
        assert torch.equal(net(x), model.backbone(x))


def test_embeddings_are_deterministic_and_normalised(digits: Corpus, tmp_path: Path) -> None:
    path = _save_tiny(digits, tmp_path / "w.safetensors")
    enc = SimCLREncoder(path).fit(digits)
    a = enc.encode(digits.train[:300])
    b = SimCLREncoder(path).fit(digits).encode(digits.train[:300])
    assert a.shape == (300, enc.dim) and a.dtype == np.float32
    assert np.array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    # The identity hashes the weights file: other weights, other cache keys.
    other = SimCLREncoder(_save_tiny(digits, tmp_path / "w2.safetensors", seed=1)).fit(digits)
    assert enc.identity.startswith("simclr-") and enc.identity != other.identity


def test_missing_and_mismatched_weights_give_one_line_errors(digits: Corpus, tmp_path: Path) -> None:
    with pytest.raises(NPSError, match="unknown encoder"):
        get_encoder("simclrr", digits)
    with pytest.raises(DataMissingError, match="train-encoder --corpus digits"):
        get_encoder("simclr", digits)  # no weights are shipped for digits
    with pytest.raises(DataMissingError, match="train-encoder"):
        SimCLREncoder(tmp_path / "absent.safetensors").fit(digits)
    # Trained on 8x8 images, asked to embed 28x28 ones.
    path = _save_tiny(digits, tmp_path / "w.safetensors")
    big = Corpus("mnist", np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.int64), np.zeros((2, 28, 28), np.uint8),
                 np.zeros(2, np.int64), ("0",))
    with pytest.raises(NPSError, match=r"shape \(8, 8\)") as exc:
        SimCLREncoder(path).fit(big)
    assert "\n" not in str(exc.value)
    # Tensors that do not fit the architecture the metadata names.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    state["conv1.0.weight"] = torch.zeros(3, 1, 3, 3)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(NPSError, match="do not match") as exc:
        SimCLREncoder(bad).fit(digits)
    assert "\n" not in str(exc.value)
    # Not a weights file at all.
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(NPSError, match=r"cannot read|not an NPS"):
        SimCLREncoder(junk).fit(digits)


# ---------------------------------------------------------------- evaluation helpers

def test_knn_matches_brute_force_numpy() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 6)).astype(np.float32), rng.normal(size=(50, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 200)
    pred = knn_predict(train, labels, test, k=7)
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = test / np.linalg.norm(test, axis=1, keepdims=True)
    nn_idx = np.argsort(-(qn @ tn.T), axis=1)[:, :7]
    for i in range(50):
        counts = np.bincount(labels[nn_idx[i]], minlength=4)
        assert counts[pred[i]] == counts.max()
    assert knn_accuracy(train, labels, train, labels, k=1) == 1.0


def test_linear_probe_separates_separable_data() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 5)).astype(np.float32) + 6 * np.eye(3, 5)[y]
    assert linear_probe_accuracy(x, y, x, y) == 1.0


# ---------------------------------------------------------------- shipped weights

SHIPPED = [("mnist", 0.97, 0.955), ("fashion-mnist", 0.85, 0.80)]
# (corpus, floor on the recorded full-split kNN@20, floor on the live 10k-train/2k-test subset check).
# kNN with a sixth of the training set reads lower (fewer neighbours): measured 0.818 for fashion-mnist
# on the subset against 0.8515 on the full split, and about one point lower for mnist.


def _shipped_or_skip(name: str) -> Corpus:
    if not weights_path(name).is_file():
        pytest.skip(f"no shipped weights at {weights_path(name)}")
    try:
        return load_corpus(name)
    except DataMissingError as exc:
        pytest.skip(f"{name} data is not on this machine: {exc}")


@pytest.mark.parametrize(("name", "floor", "subset_floor"), SHIPPED)
def test_shipped_weights_load_and_meet_the_floor(name: str, floor: float, subset_floor: float) -> None:
    corpus = _shipped_or_skip(name)
    path = weights_path(name)
    assert path.stat().st_size < 10_000_000
    from safetensors.torch import load_file
    assert all(isinstance(v, torch.Tensor) for v in load_file(str(path)).values())
    _net, meta = load_backbone(path)
    assert meta["corpus"] == name and tuple(meta["image_shape"]) == corpus.image_shape
    report = json.loads(path.with_suffix(".json").read_text())
    for key in ("command", "epochs", "wall_seconds", "machine", "knn20", "probe"):
        assert key in report, key
    assert report["command"].startswith("python -m nps train-encoder")
    assert report["knn20"] >= floor, f"{name}: recorded full-split kNN@20 {report['knn20']} < {floor}"
    # Live check on a fixed stratified subset: 10k train / 2k test.
    tr, te = stratified_rows(corpus.train_labels, 10_000), stratified_rows(corpus.test_labels, 2_000)
    enc = get_encoder("simclr", corpus)
    acc = knn_accuracy(enc.encode(corpus.train[tr]), corpus.train_labels[tr], enc.encode(corpus.test[te]),
                       corpus.test_labels[te], k=20)
    assert acc >= subset_floor, f"{name} kNN@20 on the 10k/2k subset {acc:.4f} < {subset_floor}"


def test_get_encoder_simclr_works_for_a_subset() -> None:
    corpus = _shipped_or_skip("mnist")
    sub = load_corpus("mnist", subset=500)
    enc = get_encoder("simclr", sub)
    assert isinstance(enc, SimCLREncoder) and enc.weights_path_ == weights_path("mnist")
    assert enc.identity == get_encoder("simclr", corpus).identity
    emb = enc.encode(sub.train[:10])
    assert emb.shape == (10, enc.dim) and emb.dtype == np.float32


# ---------------------------------------------------------------- CLI

@pytest.mark.parametrize("command", ["train-encoder", "encoder-eval"])
def test_cli_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--corpus" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["train-encoder", "--corpus", "no-such-corpus", "--out", "{tmp}/w.safetensors"],
    ["train-encoder", "--corpus", "digits", "--epochs", "0", "--out", "{tmp}/w.safetensors"],
    ["train-encoder", "--corpus", "digits", "--out", "{tmp}/w.pt"],
    ["train-encoder", "--corpus", "digits", "--out", "{tmp}/no/such/dir/w.safetensors"],
    ["encoder-eval", "--corpus", "digits", "--encoder", "nope"],
    ["encoder-eval", "--corpus", "digits", "--encoder", "simclr"],
])
def test_cli_bad_input_exits_2_with_one_line(argv: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_bad_flag_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train-encoder", "--epochs", "many"])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_cli_train_then_eval_on_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "simclr-digits.safetensors"
    assert main(["train-encoder", "--corpus", "digits", "--epochs", "1", "--batch-size", "256", "--threads", "1",
                 "--out", str(out), "--checkpoint", str(tmp_path / "ck.pt"), "--probe-max-train", "500"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["epochs"] == 1 and 0.0 <= report["knn20"] <= 1.0 and 0.0 <= report["probe"] <= 1.0
    assert (tmp_path / "ck.pt").is_file()
    capsys.readouterr()
    table = tmp_path / "eval.json"
    assert main(["encoder-eval", "--corpus", "digits", "--weights", str(out), "--probe-max-train", "500",
                 "--json", str(table)]) == 0
    printed = capsys.readouterr().out
    for name in ("simclr", "pca", "pixels"):
        assert name in printed
    rows = json.loads(table.read_text())["rows"]
    assert [r["encoder"] for r in rows] == ["simclr", "pca", "pixels"]
    assert rows[0]["knn"] == pytest.approx(report["knn20"], abs=1e-4)


def test_auto_encoder_resolves_per_corpus_and_records_a_concrete_name():
    from nps.config import DEFAULTS, PREFERRED_ENCODER, GenerationConfig, resolve_encoder
    assert DEFAULTS["encoder"] == "auto"
    assert resolve_encoder("auto", "mnist") == PREFERRED_ENCODER["mnist"] == "simclr"  # its weights ship
    assert resolve_encoder("auto", "fashion-mnist") == "pca"  # pca's pool measured purer there
    assert resolve_encoder("auto", "digits") == "pca"
    assert resolve_encoder("pixels", "mnist") == "pixels"
    cfg = GenerationConfig(corpus="mnist")
    assert cfg.encoder == "simclr" and GenerationConfig.from_json(cfg.to_json()) == cfg
