"""Distributed generation on a local Ray of 2 CPUs: merged shards are bit-identical to one process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nps.cli import main
from nps.config import GenerationConfig
from nps.engine.sampler import generate
from nps.errors import NPSError
from nps.lab.distributed import generate_on_ray, run_shard, shard_ids, start_ray
from nps.record import ProvenanceRecord
from nps.store import store_root

ray = pytest.importorskip("ray")

CFG = GenerationConfig(corpus="digits", n=10, seed=3, window=3, seed_size=2, k=12, batch_size=4, encoder="pca")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (starting one takes ~15 s on 2 busy cores)."""
    module, _ = start_ray(None, num_cpus=2)
    assert module.cluster_resources()["CPU"] == 2
    yield module
    module.shutdown()


def _same(a: ProvenanceRecord, b: ProvenanceRecord) -> None:
    x, y = a.to_arrays(), b.to_arrays()
    assert x.keys() == y.keys()
    for key in x:
        assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), key
    assert a.config == b.config


def test_shards_are_cut_at_batch_boundaries_and_cover_every_id():
    parts = shard_ids(10, 4, 8)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    parts = shard_ids(50, 4, 3)  # 13 batches over 3 shards: 5 + 5 + 3 batches
    assert [len(p) for p in parts] == [20, 20, 10]
    assert np.array_equal(np.concatenate(parts), np.arange(50))
    with pytest.raises(NPSError):
        shard_ids(0, 4, 2)


def test_ray_record_is_bit_identical_to_one_process(local_ray, digits):
    """Full model (ssd, loc, ssl): 3 shards on 2 CPUs, merged, equal in every array and the config."""
    plain = generate(CFG, digits)
    seen = []
    merged = generate_on_ray(CFG, digits, progress=seen.append)
    _same(plain, merged)
    assert seen[-1] == CFG.n and seen == sorted(seen)
    assert ray.is_initialized()  # an existing Ray is reused, not shut down


def test_ray_worker_refuses_a_corpus_that_differs_from_the_drivers(local_ray, digits):
    """Without the store the workers load 'digits' by name, which is not the driver's changed corpus."""
    changed = dataclasses.replace(digits, train=digits.train[::-1].copy())
    with pytest.raises(NPSError, match="content hash"):
        generate_on_ray(CFG, changed, use_store=False)


def test_ray_workers_memory_map_the_drivers_store(local_ray, digits):
    """By default the driver stores the corpus once and workers map it: even a corpus no name loads works."""
    changed = dataclasses.replace(digits, train=digits.train[::-1].copy())
    _same(generate_on_ray(CFG, changed), generate(CFG, changed))
    assert not list(store_root().glob(".corpus-*"))


def test_run_shard_alone_is_the_plain_run_on_those_ids(digits):
    ids = np.arange(4, 8)
    _same(run_shard(CFG.to_dict(), digits.content_hash, ids), generate(CFG, digits, sample_ids=ids))


def test_cli_generate_with_ray_writes_the_same_record(local_ray, digits, tmp_path):
    out = tmp_path / "ray.npz"
    args = ["generate", "--corpus", "digits", "--n", "6", "--seed", "2", "--window", "3", "--seed-size", "2",
            "--k", "12", "--batch-size", "2", "--encoder", "pca", "--out", str(out)]
    assert main([*args, "--ray"]) == 0
    plain = generate(GenerationConfig(corpus="digits", n=6, seed=2, window=3, seed_size=2, k=12, batch_size=2,
                                      encoder="pca"), digits)
    _same(ProvenanceRecord.load(out), plain)


def test_an_already_stored_corpus_is_not_stored_twice(cache_dir, digits):
    """A corpus that lives in the store under its own key (as mnist-deformed:N does) is sent by that key."""
    from nps.lab.distributed import _store_key
    from nps.store import StoreSpec, stored
    spec = StoreSpec("0123456789abcdef", "digits", len(digits), digits.image_shape, digits.test, digits.test_labels,
                     digits.class_names, "test")
    twin = stored(spec, lambda s, e: (digits.train[s:e], digits.train_labels[s:e], np.arange(s, e)))
    assert twin.content_hash == digits.content_hash != spec.key
    assert _store_key(twin) == spec.key
    assert [p.name for p in store_root().iterdir() if p.is_dir()] == ["corpus-0123456789abcdef"]


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "nonsense"])
def test_unreachable_or_malformed_ray_address_is_one_line_in_seconds(address, capsys, tmp_path):
    out = tmp_path / "x.npz"
    assert main(["generate", "--corpus", "digits", "--n", "2", "--out", str(out), "--ray", address]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_ablate_with_ray_writes_the_same_records(local_ray, tmp_path):
    """Every configuration of an ablation generated on Ray is the record of the plain ablation."""
    base = ["ablate", "--corpus", "digits", "--n", "4", "--subset", "100", "--window", "3", "--seed-size", "2",
            "--k", "8", "--encoders", "pca", "--no-full-corpus", "--batch-size", "2"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--ray", "--out", str(tmp_path / "ray")]) == 0
    plain = sorted((tmp_path / "plain" / "records").glob("*.npz"))
    assert len(plain) >= 3  # SSD only, SSD + loc, the full model
    for p in plain:
        _same(ProvenanceRecord.load(tmp_path / "ray" / "records" / p.name), ProvenanceRecord.load(p))
