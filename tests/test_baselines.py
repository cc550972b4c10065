"""The learned baselines (VAE, DCGAN, rectified flow): training, sampling, shipped weights, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nps.baselines import DEFAULTS, MODELS, check_hparams, is_baseline_file, load_samples, save_samples
from nps.cli import main
from nps.errors import NPSError

MODEL_NAMES = tuple(MODELS)


@pytest.fixture(scope="module")
def digits():
    from nps.corpora import load_corpus
    return load_corpus("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """Each model after a tiny run on digits (3 steps), with its report."""
    from nps.baselines.train import train_baseline
    return {m: train_baseline(m, digits.train, {"max_steps": 3, "batch_size": 32}) for m in MODEL_NAMES}


def _weights(model) -> dict:
    return {f"{k}.{p}": v.clone() for k, n in model.nets().items() for p, v in n.state_dict().items()}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_trains_with_finite_loss(trained, name):
    model, report = trained[name]
    assert report["steps"] == 3 and report["stop_reason"] == "--max-steps 3"
    assert report["final_loss_over_steps"] == 3
    assert all(np.isfinite(v) for v in report["final_loss"].values())
    assert report["parameters"] == sum(p.numel() for n in model.nets().values() for p in n.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_is_deterministic_given_the_seed(digits, trained, name):
    from nps.baselines.train import train_baseline
    again, _ = train_baseline(name, digits.train, {"max_steps": 3, "batch_size": 32})
    other, _ = train_baseline(name, digits.train, {"max_steps": 3, "batch_size": 32, "seed": 1})
    a, b, c = _weights(trained[name][0]), _weights(again), _weights(other)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not all(np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sampling_is_deterministic_with_shape_and_dtype(trained, name):
    from nps.baselines.io import sample_images
    model = trained[name][0]
    a, b, c = sample_images(model, 5, 7), sample_images(model, 5, 7), sample_images(model, 5, 8)
    assert a.shape == (5, 8, 8) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_non_finite_loss_stops_and_keeps_last_snapshot(digits, monkeypatch):
    from nps.baselines import train as tr
    from nps.baselines.vae import VAE
    monkeypatch.setattr(tr, "SNAPSHOT_EVERY", 2)
    real_step, calls, seen = VAE.step, [0], {}

    def step(self, x):
        calls[0] += 1
        if calls[0] == 2:  # the snapshot of step 2 holds these weights
            out = real_step(self, x)
            seen.update(_weights(self))
            return out
        if calls[0] == 4:
            return {"loss": float("nan")}
        return real_step(self, x)

    monkeypatch.setattr(VAE, "step", step)
    model, report = tr.train_baseline("vae", digits.train, {"max_steps": 10, "batch_size": 32})
    assert report["stop_reason"] == "non-finite loss at step 4; kept the weights of step 2"
    assert report["steps"] == 2
    w = _weights(model)
    assert all(np.array_equal(w[k].numpy(), seen[k].numpy()) for k in w)


def test_non_finite_loss_before_any_snapshot_is_one_line(digits, monkeypatch):
    from nps.baselines import train as tr
    from nps.baselines.vae import VAE
    monkeypatch.setattr(VAE, "step", lambda self, x: {"loss": float("inf")})
    with pytest.raises(NPSError, match="non-finite at step 1, before any good snapshot; lower --lr"):
        tr.train_baseline("vae", digits.train, {"max_steps": 10})


@pytest.mark.parametrize(("model", "flags", "message"), [
    ("vae", {"lr": 0.0}, "--lr 0.0 is out of range"),
    ("vae", {"lr": float("nan")}, "--lr nan is out of range"),
    ("gan", {"epochs": 0}, "--epochs 0 is out of range"),
    ("flow", {"batch_size": 1}, "--batch-size 1 is out of range"),
    ("flow", {"max_minutes": 0}, "--max-minutes 0 is out of range"),
    ("gan", {"threads": 0}, "--threads 0 is out of range"),
    ("vae", {"sample_steps": 8}, "--sample-steps does not apply to the vae baseline (only to flow)"),
    ("flow", {"latent": 8}, "--latent does not apply to the flow baseline (only to vae, gan)"),
    ("flow", {"sample_steps": 0}, "--sample-steps 0 is out of range"),
    ("dalle", {}, "--model 'dalle' is unknown"),
])
def test_bad_hparams_are_refused_with_one_line(model, flags, message):
    with pytest.raises(NPSError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as exc:
        check_hparams(model, flags)
    assert "\n" not in str(exc.value)


def test_defaults_table_covers_every_model():
    assert set(DEFAULTS) == set(MODELS) == {"vae", "gan", "flow"}
    for m in MODELS:
        assert check_hparams(m, {})["threads"] == 1


@pytest.mark.parametrize("argv", [
    ["baselines", "train", "--model", "vae", "--corpus", "digits", "--lr", "-1"],
    ["baselines", "train", "--model", "gan", "--corpus", "digits", "--max-minutes", "inf"],
    ["baselines", "train", "--model", "vae", "--corpus", "digits", "--out", "x.pt"],
    ["baselines", "train", "--model", "vae", "--corpus", "digits", "--replace-shipped", "--out", "a.safetensors"],
    ["baselines", "train", "--model", "flow", "--corpus", "digits", "--latent", "4"],
    ["baselines", "sample", "--model", "vae", "--n", "0", "--out", "s.npz"],
    ["baselines", "sample", "--model", "vae", "--out", "s.txt"],
    ["baselines", "sample", "--model", "flow", "--corpus", "digits", "--out", "s.npz"],
])
def test_cli_refuses_bad_flags_with_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusals (one line, see nps.cli.OneLineParser)
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shipped_weights_load_verify_and_sample(name):
    from nps.baselines.io import load_model, locate, sample_images
    from nps.shipped import WEIGHTS_DIR, read_manifest
    path = locate(name, "mnist")
    assert path == WEIGHTS_DIR / f"baseline-{name}-mnist.safetensors"
    manifest = read_manifest()
    assert path.name in manifest and path.with_suffix(".json").name in manifest
    assert path.stat().st_size < 2_000_000
    model = load_model(path)
    images = sample_images(model, 4, 0)
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8 and images.std() > 0
    card = json.loads(path.with_suffix(".json").read_text())
    for key in ("command", "train_seconds", "epochs_completed", "machine", "load_average", "final_loss",
                "sampling_ms_per_image", "weights_sha256"):
        assert key in card
    assert card["weights_sha256"] == manifest[path.name]["sha256"]


def test_damaged_shipped_weights_are_refused(tmp_path, monkeypatch):
    import shutil

    from nps import shipped
    from nps.baselines.io import load_model
    src = shipped.shipped_weights("baseline-vae", "mnist")
    for f in (src, src.with_suffix(".json"), shipped.WEIGHTS_DIR / shipped.MANIFEST_NAME):
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    bad = tmp_path / src.name
    data = bytearray(bad.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(NPSError, match=r"do not match their sha256.*baselines train --model vae --replace-shipped"):
        load_model(bad)


def test_sample_cli_writes_a_file_that_evaluate_scores(digits, trained, tmp_path, capsys):
    from nps.baselines.io import save_weights
    model, report = trained["gan"]
    w = tmp_path / "gan.safetensors"
    save_weights(w, model, {"model": "gan", "corpus": "digits", "hparams": report["hparams"],
                            "image_shape": report["image_shape"]})
    out = tmp_path / "s.npz"
    argv = ["baselines", "sample", "--model", "gan", "--weights", str(w), "--n", "12", "--seed", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    images, config = load_samples(out)
    assert images.shape == (12, 8, 8) and images.dtype == np.uint8
    assert config["model"] == "gan" and config["seed"] == 3 and config["n"] == 12
    assert len(config["weights_sha256"]) == 64
    assert main([*argv, "--out", str(tmp_path / "t.npz")]) == 0
    assert np.array_equal(load_samples(tmp_path / "t.npz")[0], images)
    assert is_baseline_file(out)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["kind"] == "baseline" and m["n"] == 12 and "entropy" in m["skipped"]
    assert m["scores"]["samples"]["n"] == 12 and m["scores"]["samples"]["is_mean"] >= 1.0
    assert m["memorisation"]["pixels"]["fraction_below"] >= 0.0
    assert (tmp_path / "ev" / "grid.png").is_file()
    assert "no provenance" in capsys.readouterr().out


def test_wrong_model_for_weights_is_one_line(digits, trained, tmp_path, capsys):
    from nps.baselines.io import save_weights
    model, report = trained["vae"]
    w = tmp_path / "vae.safetensors"
    save_weights(w, model, {"model": "vae", "corpus": "digits", "hparams": report["hparams"],
                            "image_shape": report["image_shape"]})
    assert main(["baselines", "sample", "--model", "flow", "--weights", str(w), "--out", str(tmp_path / "s.npz")]) == 2
    assert "holds the vae baseline, not flow" in capsys.readouterr().err


def test_sample_files_round_trip_and_bad_files_are_one_line(tmp_path):
    imgs = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    save_samples(tmp_path / "a.npz", imgs, {"model": "vae", "n": 2})
    got, cfg = load_samples(tmp_path / "a.npz")
    assert np.array_equal(got, imgs) and cfg == {"model": "vae", "n": 2}
    np.savez(tmp_path / "b.npz", images=imgs.astype(np.float32), config=np.array("{}"),
             baseline_version=np.array(1))
    np.savez(tmp_path / "c.npz", images=imgs, config=np.array("[1]"), baseline_version=np.array(1))
    np.savez(tmp_path / "d.npz", images=imgs, config=np.array('{"n": 3}'), baseline_version=np.array(1))
    np.savez(tmp_path / "e.npz", images=imgs, config=np.array("{}"), baseline_version=np.array(99))
    (tmp_path / "f.npz").write_bytes(b"not a zip")
    for name, msg in (("b", "must be \\(N,H,W\\[,C\\]\\) uint8"), ("c", "not a JSON object"),
                      ("d", "n=3 but the file holds 2"), ("e", "newer than this nps"),
                      ("f", "not a readable"), ("missing", "does not exist")):
        with pytest.raises(NPSError, match=msg):
            load_samples(tmp_path / f"{name}.npz")
    assert not is_baseline_file(tmp_path / "f.npz") and not is_baseline_file(tmp_path / "missing.npz")


def test_a_provenance_record_is_not_a_baseline_file(digits, tmp_path):
    from nps.analysis import record_from_maps
    src = np.zeros((2, 8, 8), np.int64)
    record_from_maps(src, digits.train, digits.train_labels, seed_size=2,
                     config={"corpus": "digits"}).save(tmp_path / "r.npz")
    assert not is_baseline_file(tmp_path / "r.npz")


def test_report_rows_read_metrics_and_shipped_cards(tmp_path, capsys):
    from nps.baselines.report import table_row
    from nps.shipped import WEIGHTS_DIR
    card = json.loads((WEIGHTS_DIR / "baseline-gan-mnist.json").read_text())
    met = {"kind": "baseline", "n": 256, "config": {"weights": "baseline-gan-mnist.safetensors"},
           "scores": {"samples": {"is_mean": 5.0, "is_std": 0.5, "fid": 200.0}, "real": {"is_mean": 8.0, "fid": 40.0}},
           "memorisation": {"exact_copies": 0, "pixels": {"fraction_below": 0.0, "real_fraction_below": 0.0}}}
    row = table_row("gan", met)
    assert row[:5] == ["gan", "256", "5.00 ± 0.50", "200.0", "8.00 / 40.0"]
    assert row[7] == f"{card['train_seconds'] / 60:.1f} min, {card['epochs_completed']:g} epochs"
    assert table_row("nps", {**met, "kind": None})[7] == "none (training-free)"
    (tmp_path / "m.json").write_text(json.dumps(met))
    assert main(["baselines", "report", "--metrics", f"gan={tmp_path / 'm.json'}"]) == 0
    assert "| gan | 256 | 5.00 ± 0.50 |" in capsys.readouterr().out
    assert main(["baselines", "report", "--metrics", "nolabel"]) == 2
    assert "must be LABEL=PATH" in capsys.readouterr().err


def test_train_cli_writes_the_cache_by_default_and_leaves_shipped_files(tmp_path, monkeypatch, capsys):
    from nps.baselines.io import load_model
    from nps.shipped import WEIGHTS_DIR, read_manifest
    monkeypatch.setenv("NPS_CACHE_DIR", str(tmp_path / "cache"))
    before = read_manifest()
    shipped = (WEIGHTS_DIR / "baseline-vae-mnist.safetensors").read_bytes()
    assert main(["baselines", "train", "--corpus", "digits", "--model", "vae", "--max-steps", "2"]) == 0
    out = tmp_path / "cache" / "weights" / "baseline-vae-digits.safetensors"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 2 and card["stop_reason"] == "--max-steps 2" and card["corpus"] == "digits"
    assert card["command"] == "python -m nps baselines train --corpus digits --model vae --max-steps 2"
    assert card["weights_sha256"] == load_model(out).sha256_ and card["sampling_ms_per_image"] > 0
    assert read_manifest() == before and (WEIGHTS_DIR / "baseline-vae-mnist.safetensors").read_bytes() == shipped
    assert "wrote " in capsys.readouterr().out
