"""The step's float32 scores: the Gaussian-weighted SSD of every candidate window, per sample or shared.

Split from :mod:`nps.engine.sampler` so that each file has one job: this one scores a step's candidate
windows (the dense scan), :mod:`nps.engine.sampler_choice` decides which are kept and draws one, the
sampler runs the batches.  :class:`StepScores` is a base of :class:`nps.engine.sampler.Sampler`; its
methods read the sampler's corpus arrays (the attributes annotated below, set by ``Sampler.__init__``).
"""

from __future__ import annotations

import numpy as np
import torch

from nps.config import GenerationConfig
from nps.engine.sampler_setup import CandidatePool, StepGeometry
from nps.engine.ssd import (
    BandIndex,
    band_index,
    shared_band,
    square_template,
    window_ssd,
    window_ssd_rows,
    window_ssd_shared,
)

__all__ = ["CHUNK_SCORES", "StepScores"]

# Scores per chunk of a shared pool: 4 MB of float32, so each chunk is finished in cache.
CHUNK_SCORES = 1 << 20


class StepScores:
    """The scoring half of a sampler: :meth:`distances` (the canonical (B,O,P) order) and its parts."""

    config: GenerationConfig
    device: torch.device
    train_u8: torch.Tensor  # (N,H,W,C) uint8, for exact copies (a store's on-demand view when lazy)
    padded_: torch.Tensor  # (N,C,Hp,Wp) uint8, the corpus padded by half a window (or its on-demand view)
    width_: int  # Wp

    def spans_width(self, geo: StepGeometry) -> bool:
        """Whether the step's candidate windows cover every padded column (scored by :func:`window_ssd_rows`)."""
        _, _, cx0, cx1 = geo.centres
        return cx0 == 0 and cx1 + self.config.window - 1 == self.width_

    def _band_index(self, geo: StepGeometry) -> BandIndex:
        """The step's banded-matrix index, built on first use (only per-sample pools need it)."""
        if geo.index is None:
            cy0, cy1, cx0, cx1 = geo.centres
            geo.index = band_index(cy1 - cy0, cx1 - cx0, geo.known, (cy0, cx0), self.width_,
                                   self.train_u8.shape[3] + 1).to(self.device)
            geo.template = square_template(geo.gm, geo.index)
        return geo.index

    def distances(self, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool) -> torch.Tensor:
        """Normalised Gaussian-weighted SSD of every candidate window.

        Args:
            cpad: (B,C,H+2h,W+2h) float32 padded canvases in [0,1].
        Returns:
            (B,O,P) float32 for O = ny*nx candidate centres (row-major) and P pool images,
            the canonical candidate order; +inf for excluded slots (padding of an adaptive
            pool, the sample's own reference).
        """
        if pool.images is None:
            d = torch.cat(self._shared_chunks(geo, cpad, pool), 1)  # (ny,N,nx,B)
            return d.permute(3, 0, 2, 1).reshape(d.shape[3], -1, d.shape[1])
        cy0, cy1, cx0, cx1 = geo.centres
        w = self.config.window
        target = cpad[:, :, geo.y:geo.y + w, geo.x:geo.x + w]  # (B,C,w,w)
        if self.spans_width(geo):  # every column (no locality): one band for all rows, nothing kept
            d = window_ssd_rows(pool.images, self.width_, cy0, target, geo.gm, cy1 - cy0, geo.gm_sum)
        else:
            d = window_ssd(pool.images, self.width_, (cy0, cx0), target, geo.gm, cy1 - cy0, cx1 - cx0,
                           self._band_index(geo), geo.gm_sum, geo.template)
        if pool.excluded is not None:
            d.masked_fill_(pool.excluded[:, None, :], float("inf"))
        return d

    def _shared_chunks(self, geo: StepGeometry, cpad: torch.Tensor, pool: CandidatePool) -> list[torch.Tensor]:
        """Distances to a pool shared by the batch (``pool.subset`` ids, or the whole corpus).

        Returns:
            (ny,n_c,nx,B) float32 chunks in pool order (centre offset o = oy*nx + ox), small
            enough to stay in cache while they are finished; +inf where a slot is the
            sample's own reference.
        """
        cy0, cy1, cx0, cx1 = geo.centres
        ny, nx = cy1 - cy0, cx1 - cx0
        w = self.config.window
        target = cpad[:, :, geo.y:geo.y + w, geo.x:geo.x + w]  # (B,C,w,w)
        B = target.shape[0]
        bands = shared_band(geo.gm, target, nx + w - 1)
        N = self.padded_.shape[0] if pool.subset is None else len(pool.subset)
        size = max(64, CHUNK_SCORES // max(1, B * ny * nx))
        out = []
        for s in range(0, N, size):
            rows = slice(s, s + size) if pool.subset is None else pool.subset[s:s + size]
            region = self.padded_[rows, :, cy0:cy0 + ny + w - 1, cx0:cx0 + nx + w - 1]
            d = window_ssd_shared(region.float().div_(255.0), target, geo.gm, geo.gm_sum, bands, pool_major=True)
            if pool.excluded_slot is not None:
                inside = np.flatnonzero((pool.excluded_slot >= s) & (pool.excluded_slot < s + d.shape[1]))
                if len(inside):
                    d[:, torch.from_numpy(pool.excluded_slot[inside] - s), :, torch.from_numpy(inside)] = float("inf")
            out.append(d)
        return out
