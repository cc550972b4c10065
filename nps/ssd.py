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

import numpy as np
import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=4096)
def _band_index(ny: int, nx: int, window: int, known_key: bytes, origin: tuple[int, int],
                width: int, channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
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
    return (torch.from_numpy(active.astype(np.int64)), torch.from_numpy(flat.ravel().astype(np.int64)),
            torch.from_numpy(k.astype(np.int64)), A)


def band_index(ny: int, nx: int, gm: np.ndarray, origin: tuple[int, int], width: int,
               channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Index tensors of the banded matrix for one step (cached: they depend only on geometry).

    Args:
        ny, nx: the block of candidate centres; the window of centre offset (oy, ox)
            starts at padded-image pixel (origin[0] + oy, origin[1] + ox).
        gm: (w,w) float weights, zero where the context pixel is unknown.
        width: padded image width Wp (pixels are flattened as y * Wp + x).
        channels: rows per pixel in the band (image channels + 1 for the squares).
    Returns:
        active: (A,) int64 flattened padded-image pixels that some known weight touches.
        flat: (channels*O*K,) int64 positions in the flattened (O, A, channels) band.
        k: (O*K,) int64 window-pixel index (ky*w + kx) of each entry.
        A: len(active).
    """
    known = np.ascontiguousarray(gm > 0)
    return _band_index(ny, nx, gm.shape[0], known.tobytes(), tuple(origin), width, channels)


def _bands(gm: torch.Tensor, target: torch.Tensor, ny: int, nx: int, origin: tuple[int, int],
           width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gather index and the banded matrix of one step.

    Returns:
        active: (A,) int64 pixels to gather.
        band: (B,O,A*(C+1)) float32, columns (pixel, channel): -2 gm*t on the C image
            channels, gm on the extra channel that holds the sum of squares over channels.
        tt: (B,) float32, sum gm t^2.
    """
    B, C = target.shape[:2]
    dev = gm.device
    active, flat, k, A = band_index(ny, nx, gm.detach().cpu().numpy(), origin, width, C + 1)
    if dev.type != "cpu":
        active, flat, k = active.to(dev), flat.to(dev), k.to(dev)
    g = gm.reshape(-1)
    wt = (gm * target).reshape(B, C, -1)  # (B,C,w*w)
    tt = (wt * target.reshape(B, C, -1)).sum((1, 2))
    weights = torch.cat([-2.0 * wt, g.expand(B, 1, -1)], 1)  # (B,C+1,w*w)
    band = torch.zeros((B, ny * nx * (C + 1) * A), dtype=gm.dtype, device=dev)
    band.index_copy_(1, flat, weights[:, :, k].reshape(B, -1))
    return active, band.reshape(B, ny * nx, -1), tt


def with_squares(images: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Append the per-pixel sum of squares over channels as one more channel.

    The SSD's ``sum gm s^2`` term then comes out of the same matrix product as the cross term.
    """
    return torch.cat([images, (images * images).sum(channel_dim, keepdim=True)], channel_dim)


def window_ssd(pool: torch.Tensor, width: int, origin: tuple[int, int], target: torch.Tensor,
               gm: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """Normalised weighted SSD of every candidate window, one pool per sample.

    Args:
        pool: (B,L,C+1,P) float32 from :func:`with_squares`: P padded source images per
            sample in [0,1], pixels flattened (L = Hp*Wp, index y*Wp + x); channel and pool
            slot innermost so that a step's gather copies contiguous blocks.
        width: Wp.
        origin: padded-image (y, x) where the window of centre offset (0, 0) starts.
        target: (B,C,w,w) float32 context of each sample (unknown pixels arbitrary).
        gm: (w,w) float32 Gaussian x known mask, shared by the batch.
    Returns:
        (B,O,P) float32 with O = ny*nx centre offsets (row-major): d of each candidate.
    """
    B, _, _, P = pool.shape
    active, band, tt = _bands(gm, target, ny, nx, origin, width)
    x = pool.index_select(1, active)  # (B,A,C+1,P)
    num = torch.bmm(band, x.reshape(B, -1, P))  # (B,O,P)
    return (num + tt[:, None, None]) / gm.sum()


def window_ssd_shared(region: torch.Tensor, target: torch.Tensor, gm: torch.Tensor) -> torch.Tensor:
    """As :func:`window_ssd` when one set of n source regions serves the whole batch.

    Here the batch's contexts are the output channels of one convolution over the
    regions (mkldnn on CPU), which beats the banded product when the candidate block
    is large (locality off: every position of every image).

    Args:
        region: (n,C,ry,rx) float32 in [0,1], candidate centres' windows inside it.
        target: (B,C,w,w) float32.
        gm: (w,w) float32.
    Returns:
        (B,O,n) float32, O = (ry-w+1)*(rx-w+1) centre offsets, row-major.
    """
    B, C = target.shape[:2]
    wt = gm * target  # (B,C,w,w)
    tt = (wt * target).sum((1, 2, 3))
    d = F.conv2d(region, wt)  # (n,B,ny,nx), the cross term
    sq = F.conv2d(region * region, gm.expand(1, C, -1, -1))  # (n,1,ny,nx)
    # In place: with locality off these tensors hold every window of every image.
    d.mul_(-2.0).add_(sq).add_(tt[None, :, None, None]).div_(gm.sum())
    return d.permute(1, 2, 3, 0).reshape(B, -1, region.shape[0])


def window_ssd_reference(source: np.ndarray, target: np.ndarray, gm: np.ndarray, cy: int, cx: int) -> float:
    """Plain definition for one window (for tests): source (Hp,Wp[,C]) padded float, centre in padded coords."""
    h = gm.shape[0] // 2
    s = source[cy - h:cy + h + 1, cx - h:cx + h + 1]
    diff = (np.asarray(target, np.float64) - s) ** 2
    if diff.ndim == 3:
        diff = diff.sum(-1)
    return float((gm * diff).sum() / gm.sum())
