"""The window index's per-position split weights (nps.engine.search_splits).

They steer only the k-d splits; the exact search's results do not depend on them (every
exact-versus-brute test in test_sampler.py and test_search.py runs on an index built with them).
"""

from __future__ import annotations

import numpy as np
import pytest

from nps.config import GenerationConfig
from nps.engine.sampler import Sampler, Stopped
from nps.engine.search import ExactSearch
from nps.engine.search_index import WindowIndex, build_index
from nps.engine.search_splits import FLOOR, known_share, split_gaussian, split_weights


def _engine_share(corpus) -> np.ndarray:
    """(H*W, w*w) the same shares from the engine's own step geometries (default SSD + locality run)."""
    cfg = GenerationConfig(corpus=corpus.name, constraints="ssd,loc").fit_canvas(corpus.image_shape,
                                                                                 seed_size_given=False)
    h, w = corpus.image_shape[:2]
    share, hits = np.zeros((h * w, cfg.window ** 2)), np.zeros(h * w)
    for geo in Sampler(cfg, corpus)._geometries():
        y0, y1, x0, x1 = geo.centres
        band = [cy * w + cx for cy in range(y0, y1) for cx in range(x0, x1)]
        share[band] += geo.known.ravel()
        hits[band] += 1
    return share / np.maximum(hits, 1)[:, None]


@pytest.mark.parametrize("name, subset", [("digits", None), ("mnist", 50)])
def test_known_share_is_the_engines_own_step_masks(name, subset):
    from nps.corpora import load_corpus
    corpus = load_corpus(name, subset)
    h, w = corpus.image_shape[:2]
    assert np.array_equal(known_share(h, w, 7), _engine_share(corpus))


def test_known_share_faces_the_seed_on_a_28x28_canvas():
    share = known_share(28, 28, 7).reshape(28, 28, 7, 7)
    assert (share[:, :, 3, 3] == 0).all()  # the pixel being filled is never known
    assert (share[12:16, 12:16] == 0).all()  # the seed's interior: no default step's band reaches it
    left = share[14, 2]  # a position on the left edge, halfway down: its targets grow leftwards
    assert (left[:, :3] == 0).all() and (left[:, 4:] == 1).all()
    top = share[2, 14]  # on the top edge: its targets grow upwards, known below
    assert (top[:3] == 0).all() and (top[4:] == 1).all()


def test_split_weights_keep_every_non_centre_dimension_splittable():
    wts = split_weights(8, 8, 5, 3)  # (64, 75): channels repeated in (ky, kx, c) order
    assert wts.shape == (64, 75)
    assert np.array_equal(wts[:, 0::3], wts[:, 2::3])
    g = split_gaussian(5).ravel()
    per_pixel = wts[:, 0::3]
    assert (per_pixel[:, 12] == 0).all() and (np.delete(per_pixel, 12, 1) >= FLOOR * np.delete(g, 12)).all()


def test_tuned_splits_screen_fewer_windows_than_the_generic_tree_on_mnist():
    """The reason for the weights, on 2,000 MNIST images (SSD + locality, exact): the same draws, fewer
    windows screened and fewer leaves bounded than with one Gaussian for every position."""
    from nps.corpora import load_corpus
    from nps.engine.sampler_setup import padded_corpus
    corpus = load_corpus("mnist", 2000)
    _, padded = padded_corpus(corpus, 3)
    generic = np.tile(split_gaussian(7).ravel(), (28 * 28, 1))
    cfg = GenerationConfig(corpus="mnist", subset=2000, n=2, seed=4, batch_size=2, constraints="ssd,loc",
                           search="exact")
    screened, drawn = {}, {}
    for name, weights in (("tuned", None), ("generic", generic)):
        index = WindowIndex(**build_index(padded.numpy(), 7, 28, 28, weights=weights))
        sampler = Sampler(cfg, corpus).prepare()
        search = sampler.search_ = ExactSearch(index, padded, cfg, 28)
        seen, screen = [], search._screen
        search._screen = lambda ids, *a, _s=screen, _seen=seen: _seen.append(len(ids)) or _s(ids, *a)
        picks = []
        choose = search.choose
        search.choose = lambda *a, _c=choose, _p=picks: _p.append(_c(*a)) or _p[-1]
        with pytest.raises(Stopped):
            sampler.run(progress=lambda info: info.step < 160)  # the first 160 steps: strokes, near the seed
        screened[name] = sum(seen)
        drawn[name] = np.concatenate([np.concatenate(p[0]) for p in picks])
    assert np.array_equal(drawn["tuned"], drawn["generic"])
    assert screened["tuned"] < 0.75 * screened["generic"], screened
