"""Gaussian-weighted SSD of many candidate windows against one context, as matrix products.

For a target context ``t`` (w x w, C channels) with known-pixel weights ``gm`` (the
Gaussian times the known mask) and a candidate window ``s``::

    d(s) = sum_k gm_k (t_k - s_k)^2 / sum_k gm_k
         = (sum gm s^2  -  2 sum (gm t) s  +  sum gm t^2) / sum gm

The candidates are every window whose centre lies in an (ny x nx) block of one
source image, so all of them live in a (ny+w-1) x (nx+w-1) *region*.  Both sums
over ``s`` are then one matrix product of the flattened region with a banded
(Toeplitz) matrix that places the weights of each centre offset ``o`` at the
region pixels its window covers.  Only region pixels covered by some known
window pixel are kept, so early steps (few known pixels) are cheap.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch


class BandIndex(NamedTuple):
    """Index tensors of one step's banded matrix (they depend only on geometry).

    The band is (O, A, C+1) flattened: O centre offsets, A region pixels, and per pixel
    the C image channels followed by the sum-of-squares channel.

    Attributes:
        active: (A,) int64 flattened padded-image pixels that some known weight touches.
        image_flat: (C*O*K,) int64 band positions of the image-channel entries.
        image_src: (C*O*K,) int64 their positions in the flattened (C, w*w) target weights.
        square_flat: (O*K,) int64 band positions of the squares-channel entries.
        square_src: (O*K,) int64 their window-pixel index (ky*w + kx).
        rows: O.
        size: A.
        channels: C+1.
    """

    active: torch.Tensor
    image_flat: torch.Tensor
    image_src: torch.Tensor
    square_flat: torch.Tensor
    square_src: torch.Tensor
    rows: int
    size: int
    channels: int

    def to(self, device: torch.device) -> BandIndex:
        return self._replace(**{f: getattr(self, f).to(device) for f in self._fields[:5]})


@functools.lru_cache(maxsize=4096)
def _band_index(ny: int, nx: int, window: int, known_key: bytes, origin: tuple[int, int],
                width: int, channels: int) -> BandIndex:
    known = np.frombuffer(known_key, dtype=bool).reshape(window, window)
    ky, kx = np.nonzero(known)
    oy, ox = np.divmod(np.arange(ny * nx), nx)
    py = oy[:, None] + ky[None, :] + origin[0]  # (O,K) padded-image row of each window pixel
    px = ox[:, None] + kx[None, :] + origin[1]
    active, rows = np.unique((py * width + px).ravel(), return_inverse=True)
    A = len(active)
    o = np.repeat(np.arange(ny * nx), len(ky))
    k = np.tile(ky * window + kx, ny * nx)
    # Flat position in a (O, A, channels) band of entry (o, rows, c) for every channel c:
    # the band's columns run (pixel, channel) to match the pool's (B, L, C+1, P) layout.
    c = np.arange(channels)[:, None]
    flat = (o[None, :] * A + rows[None, :]) * channels + c  # (channels, O*K)
    src = c * window * window + k[None, :]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a).ravel().astype(np.int64))
    return BandIndex(t(active), t(flat[:-1]), t(src[:-1]), t(flat[-1]), t(k), ny * nx, A, channels)


def band_index(ny: int, nx: int, known: np.ndarray, origin: tuple[int, int], width: int,
               channels: int) -> BandIndex:
    """The :class:`BandIndex` of one step (cached).

    Args:
        ny, nx: the block of candidate centres; the window of centre offset (oy, ox)
            starts at padded-image pixel (origin[0] + oy, origin[1] + ox).
        known: (w,w) bool, the known context pixels (those with nonzero weight).
        width: padded image width Wp (pixels are flattened as y * Wp + x).
        channels: rows per pixel in the band (image channels + 1 for the squares).
    """
    known = np.ascontiguousarray(known, dtype=bool)
    return _band_index(ny, nx, known.shape[0], known.tobytes(), tuple(origin), width, channels)


def square_template(gm: torch.Tensor, index: BandIndex) -> torch.Tensor:
    """(O*A*(C+1),) float32: the band with only its target-independent entries filled.

    The squares channel carries ``gm`` in every row, the same for the whole batch, so the
    sampler builds this once per step and each step only scatters the target's weights.
    """
    band = torch.zeros(index.rows * index.size * index.channels, dtype=gm.dtype, device=gm.device)
    band[index.square_flat] = gm.reshape(-1)[index.square_src]
    return band


def _bands(gm: torch.Tensor, target: torch.Tensor, index: BandIndex,
           template: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The banded matrix of one step.

    Returns:
        band: (B,O,A*(C+1)) float32, columns (pixel, channel): -2 gm*t on the C image
            channels, gm on the extra channel that holds the sum of squares over channels.
        tt: (B,) float32, sum gm t^2.
    """
    B, C = target.shape[:2]
    wt = (gm * target).reshape(B, C, -1)  # (B,C,w*w)
    tt = (wt * target.reshape(B, C, -1)).sum((1, 2))
    band = (square_template(gm, index) if template is None else template).expand(B, -1).clone()
    band.index_copy_(1, index.image_flat, wt.mul_(-2.0).reshape(B, -1).index_select(1, index.image_src))
    return band.reshape(B, index.rows, -1), tt


def with_squares(images: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Append the per-pixel sum of squares over channels as one more channel.

    The SSD's ``sum gm s^2`` term then comes out of the same matrix product as the cross term.
    """
    return torch.cat([images, (images * images).sum(channel_dim, keepdim=True)], channel_dim)


def window_ssd(pool: torch.Tensor, width: int, origin: tuple[int, int], target: torch.Tensor,
               gm: torch.Tensor, ny: int, nx: int, index: BandIndex | None = None,
               gm_sum: float | None = None, template: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised weighted SSD of every candidate window, one pool per sample.

    Args:
        pool: (B,L,C+1,P) float32 from :func:`with_squares`: P padded source images per
            sample in [0,1], pixels flattened (L = Hp*Wp, index y*Wp + x); channel and pool
            slot innermost so that a step's gather copies contiguous blocks.
        width: Wp.
        origin: padded-image (y, x) where the window of centre offset (0, 0) starts.
        target: (B,C,w,w) float32 context of each sample (unknown pixels arbitrary).
        gm: (w,w) float32 Gaussian x known mask, shared by the batch.
        index, gm_sum, template: :func:`band_index` for this geometry, ``gm.sum()`` and
            :func:`square_template`, when the caller has them (the sampler keeps them per step).
    Returns:
        (B,O,P) float32 with O = ny*nx centre offsets (row-major): d of each candidate.
    """
    B, C1, P = pool.shape[0], pool.shape[2], pool.shape[3]
    if index is None:
        index = band_index(ny, nx, gm.detach().cpu().numpy() > 0, origin, width, C1).to(gm.device)
    band, tt = _bands(gm, target, index, template)
    x = pool.index_select(1, index.active)  # (B,A,C+1,P)
    num = torch.bmm(band, x.reshape(B, -1, P))  # (B,O,P)
    return num.add_(tt[:, None, None]).div_(float(gm.sum()) if gm_sum is None else gm_sum)


def row_band(gm: torch.Tensor, target: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample banded matrices of one step whose candidate windows span the padded width.

    A window whose centre row offset is ``oy`` covers padded rows ``oy .. oy+w-1``: a contiguous
    run of ``w * Wp * (C+1)`` entries of a pool image flattened as (pixel, channel).  So one band
    per sample, the same for every ``oy``, maps that run to the score numerators of all
    ``nx = Wp - w + 1`` centre columns: -2 gm*t on the C image channels and gm on the squares
    channel (:func:`with_squares`).

    Args:
        gm: (w,w) float32; target: (B,C,w,w) float32; width: Wp.
    Returns:
        band: (B,nx,w*Wp*(C+1)) float32, columns (window row, padded column, channel).
        tt: (B,) float32, sum gm t^2.
    """
    B, C, w = target.shape[0], target.shape[1], gm.shape[0]
    nx = width - w + 1
    band = torch.zeros((B, nx, w, width, C + 1), dtype=gm.dtype, device=gm.device)
    wt = gm * target  # (B,C,w,w)
    tt = (wt * target).sum((1, 2, 3))
    weights = torch.cat([wt.mul_(-2.0).permute(0, 2, 3, 1), gm[None, :, :, None].expand(B, w, w, 1)], 3)  # (B,w,w,C+1)
    for ox in range(nx):
        band[:, ox, :, ox:ox + w, :] = weights
    return band.reshape(B, nx, -1), tt


def window_ssd_rows(pool: torch.Tensor, width: int, y0: int, target: torch.Tensor, gm: torch.Tensor,
                    ny: int, gm_sum: float | None = None) -> torch.Tensor:
    """As :func:`window_ssd` when the candidate centres cover every column (no locality band).

    :func:`window_ssd`'s band has one row per centre offset and one column per region pixel, so
    for the ``28 x 28`` centres of a whole MNIST image it is 784 x 1156 with 49 nonzeros a row
    (and a 7 MB template per step).  Here the band (:func:`row_band`) is the same for every centre
    row, so each of the ``ny`` rows is one batched product with a contiguous slice of the pool,
    about five times fewer multiply-adds, and nothing is kept between steps.  Each score is still
    a dot product of the known pixels' terms (the band's other entries are zeros), so the float32
    error bound of :mod:`nps.engine.certify` holds unchanged.

    Args:
        pool: (B,L,C+1,P) float32 from :func:`with_squares` (L = Hp*Wp, index y*Wp + x).
        width: Wp; the window of centre offset (oy, ox) starts at padded pixel (y0 + oy, ox).
        y0: padded row of the first centre row's window.
        target: (B,C,w,w) float32; gm: (w,w) float32; ny: centre rows.
        gm_sum: ``gm.sum()`` when the caller has it.
    Returns:
        (B,O,P) float32, O = ny * (Wp - w + 1) centre offsets (row-major), like :func:`window_ssd`.
    """
    B, L, C1, P = pool.shape
    w = gm.shape[0]
    band, tt = row_band(gm, target, width)  # (B,nx,w*Wp*C1)
    nx, run = band.shape[1], width * C1
    flat = pool.reshape(B, L * C1, P)
    out = torch.empty((ny, B, nx, P), dtype=pool.dtype, device=pool.device)
    for oy in range(ny):
        start = (y0 + oy) * run
        torch.bmm(band, flat[:, start:start + w * run], out=out[oy])
    d = out.permute(1, 0, 2, 3).reshape(B, ny * nx, P)
    return d.add_(tt[:, None, None]).div_(float(gm.sum()) if gm_sum is None else gm_sum)


def shared_band(gm: torch.Tensor, target: torch.Tensor, region_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The banded matrices of one step for a pool shared by the batch.

    A window whose centre row offset is ``oy`` covers region rows ``oy .. oy+w-1``: a
    contiguous run of the flattened region.  So one band, the same for every ``oy``, maps
    that run to the cross term of all B contexts at the nx centre column offsets, and a
    second, shared by the batch, maps the run of squared pixels to the ``sum gm s^2`` term.

    Args:
        gm: (w,w) float32; target: (B,C,w,w) float32; region_width: rx.
    Returns:
        cross: (w*rx*C, nx*B) float32, rows (region row, column, channel), columns (ox, sample),
            entries -2 gm*t.
        square: (w*rx, nx) float32, entries gm.
    """
    B, C, w = target.shape[0], target.shape[1], gm.shape[0]
    nx = region_width - w + 1
    cross = torch.zeros((w, region_width, C, nx, B), dtype=gm.dtype, device=gm.device)
    square = torch.zeros((w, region_width, nx), dtype=gm.dtype, device=gm.device)
    weights = (gm * target).mul_(-2.0).permute(2, 3, 1, 0)  # (w,w,C,B)
    for ox in range(nx):
        cross[:, ox:ox + w, :, ox, :] = weights
        square[:, ox:ox + w, ox] = gm
    return cross.reshape(-1, nx * B), square.reshape(-1, nx)


def window_ssd_shared(region: torch.Tensor, target: torch.Tensor, gm: torch.Tensor,
                      gm_sum: float | None = None, bands: tuple[torch.Tensor, torch.Tensor] | None = None,
                      pool_major: bool = False) -> torch.Tensor:
    """As :func:`window_ssd` when one set of n source regions serves the whole batch.

    One matrix product per centre row offset (see :func:`shared_band`) over contiguous
    slices of the flattened regions, so nothing is gathered and the product runs near
    the CPU's peak; the batch's contexts are the columns.

    Args:
        region: (n,C,ry,rx) float32 in [0,1], candidate centres' windows inside it.
        target: (B,C,w,w) float32.
        gm: (w,w) float32.
        gm_sum, bands: ``gm.sum()`` and :func:`shared_band`, when the caller has them.
        pool_major: return (ny,n,nx,B), the product's own layout (no copy), instead.
    Returns:
        (B,O,n) float32, O = ny*nx centre offsets (ry-w+1 by rx-w+1), row-major.
    """
    n, C, ry, rx = region.shape
    B, w = target.shape[0], gm.shape[0]
    ny, nx = ry - w + 1, rx - w + 1
    cross, square = shared_band(gm, target, rx) if bands is None else bands
    tt = ((gm * target) * target).sum((1, 2, 3))  # (B,)
    x = region.permute(0, 2, 3, 1).reshape(n, -1)  # (n, ry*rx*C), rows of (column, channel)
    sq = (region * region).sum(1).reshape(n, -1)  # (n, ry*rx)
    out = torch.empty((ny, n, B * nx), dtype=region.dtype, device=region.device)
    squares = torch.empty((ny, n, nx), dtype=region.dtype, device=region.device)
    for oy in range(ny):
        torch.mm(x[:, oy * rx * C:(oy + w) * rx * C], cross, out=out[oy])
        torch.mm(sq[:, oy * rx:(oy + w) * rx], square, out=squares[oy])
    # The batch is innermost, so these broadcasts run over contiguous rows of B.
    out = out.view(ny, n, nx, B)
    out.add_(squares[..., None]).add_(tt)
    out.div_(float(gm.sum()) if gm_sum is None else gm_sum)
    if pool_major:
        return out
    return out.permute(3, 0, 2, 1).reshape(B, ny * nx, n)


def window_ssd_reference(source: np.ndarray, target: np.ndarray, gm: np.ndarray, cy: int, cx: int) -> float:
    """Plain definition for one window (for tests): source (Hp,Wp[,C]) padded float, centre in padded coords."""
    h = gm.shape[0] // 2
    s = source[cy - h:cy + h + 1, cx - h:cx + h + 1]
    diff = (np.asarray(target, np.float64) - s) ** 2
    if diff.ndim == 3:
        diff = diff.sum(-1)
    return float((gm * diff).sum() / gm.sum())
