"""The sampler on ``--device cuda``: the same records as on the CPU, bit for bit (issue 10, part 7).

The CUDA tests skip without a GPU (``tools/gpu_check.sh`` runs them on one).  On CUDA the
canvases, the dense float32 scores and the per-sample pools live on the GPU; the pruned
whole-corpus search (:mod:`nps.engine.search`, :mod:`nps.engine.search_approx`) and every
float64 certification read the corpus on the CPU.  Every kept set is decided by the float64
definition, so the device may change the float32 rounding but never a record.

The CPU tests check what the GPU relies on and can fail here: float32 products run in IEEE
float32 during a run whatever the process's matmul precision (TF32 / bf16 would break the
certifier's error bound), and a stored corpus refuses CUDA in one line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nps.config import GenerationConfig
from nps.engine.sampler import Sampler, generate
from nps.errors import NPSError
from nps.record import ProvenanceRecord

SMALL = dict(corpus="digits", window=3, seed_size=2, k=12, batch_size=4)
_RECORD_KEYS = ("images", "source_index", "source_y", "source_x", "source_label", "pool_size", "relaxed")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (tools/gpu_check.sh runs it on one)")


def _cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{**SMALL, "n": 5, "seed": 11, **kw})


def _same_record(a: ProvenanceRecord, b: ProvenanceRecord) -> None:
    for key in _RECORD_KEYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


# ----------------------------------------------------------------------------- CUDA against CPU

@cuda
@pytest.mark.parametrize("search", ["exact", "approx", "brute"])
@pytest.mark.parametrize("cons", ["ssd", "ssd,loc"])
def test_cuda_whole_corpus_records_equal_cpu(digits, cons, search):
    cfg = _cfg(constraints=cons, search=search, nprobe=2)  # nprobe 2: the approximate search really prunes
    on_gpu = generate(cfg.replace(device="cuda"), digits)
    _same_record(generate(cfg, digits), on_gpu)
    assert on_gpu.config["device"] == "cuda"


@cuda
@pytest.mark.parametrize("extra", [{"window": 5, "seed_size": 3}, {"max_ssd": 0.002}, {"include_reference": True},
                                   {"eps": 0.0, "tol": 0.0}])
def test_cuda_exact_search_variants_equal_cpu(digits, extra):
    cfg = _cfg(constraints="ssd,loc", search="exact", **extra)
    _same_record(generate(cfg, digits), generate(cfg.replace(device="cuda"), digits))


@cuda
def test_cuda_exact_search_uses_the_pruned_index(digits):
    """The CUDA run is served by the index search (not a silent fall-back to the dense scan)."""
    sampler = Sampler(_cfg(constraints="ssd,loc", search="exact", device="cuda"), digits)
    assert sampler.exact_search(build=True) is not None
    assert sampler.padded_.device.type == "cuda" and sampler.padded_host_.device.type == "cpu"
    _same_record(generate(_cfg(constraints="ssd,loc", search="exact"), digits), sampler.run())


@cuda
@pytest.mark.parametrize("cons", ["ssd,loc,ssl", "loc,ssl", "ssd,ssl"])
def test_cuda_semantic_pools_equal_cpu(digits, cons):
    cfg = _cfg(constraints=cons)
    _same_record(generate(cfg, digits), generate(cfg.replace(device="cuda"), digits))


@cuda
def test_cuda_exact_search_on_mnist_subset_equals_cpu():
    """A mid-size corpus (2,000 MNIST images, 28x28, w=7), the bench's own configuration of SSD + locality."""
    from nps.corpora import load_corpus
    corpus = load_corpus("mnist", 2000)
    cfg = GenerationConfig(corpus="mnist", subset=2000, n=4, seed=3, batch_size=4, constraints="ssd,loc",
                           search="exact")
    _same_record(generate(cfg, corpus), generate(cfg.replace(device="cuda"), corpus))


@cuda
def test_cuda_bench_case_runs_and_records_its_device():
    from nps.lab.bench import run_case
    r = run_case("loc-exact", "digits", 4, 4, repeats=1, device="cuda")
    assert "error" not in r, r
    assert r["device"] == "cuda" and r["ms_per_image"] > 0


# ----------------------------------------------------------------------------- what CUDA relies on, checked here

def _precisions() -> list[str]:
    backends = [torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None)]
    return [b.fp32_precision for b in backends if b is not None and hasattr(b, "fp32_precision")]


def test_runs_use_ieee_float32_products_whatever_the_process_asked(digits):
    """TF32 (CUDA) or bf16 (oneDNN) products would break the certifier's float32 error bound."""
    matmul = torch.backends.cuda.matmul
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    if not hasattr(matmul, "fp32_precision") or mkldnn is None:
        pytest.skip("this torch has no per-backend fp32_precision")
    cfg = _cfg(constraints="ssd,loc,ssl", search="brute")
    plain = generate(cfg, digits)
    old = (matmul.fp32_precision, mkldnn.fp32_precision)
    seen: list[list[str]] = []
    try:
        matmul.fp32_precision, mkldnn.fp32_precision = "tf32", "bf16"
        rec = generate(cfg, digits, progress=lambda info: seen.append(_precisions()))
        after = _precisions()
    finally:
        matmul.fp32_precision, mkldnn.fp32_precision = old
    assert seen and all(p == ["ieee", "ieee"] for p in seen)  # inside the run
    assert after == ["tf32", "bf16"]  # the caller's setting, restored
    _same_record(plain, rec)


def test_stored_corpus_refuses_cuda_in_one_line():
    from nps.engine.store_view import PaddedView, TrainView
    view = PaddedView(TrainView(np.zeros((3, 8, 8), np.uint8)), 1)
    assert view.to(torch.device("cpu")) is view
    with pytest.raises(NPSError, match="--device cpu"):
        view.to(torch.device("cuda"))
