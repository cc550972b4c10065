"""Write scikit-learn's two sample photos, cut into square tiles, as a ``folder:`` corpus (colour, offline).

``sklearn.datasets.load_sample_images()`` ships ``china.jpg`` and ``flower.jpg``
(427x640x3 uint8 each) inside the wheel, so every machine with the lab has them.
Each photo becomes one class folder of non-overlapping TILE x TILE PNG tiles (lossless,
so the corpus read back is exactly the tiles), named by their grid position:

    python tools/sample_photos_folder.py /tmp/photos            # 2 x 260 tiles of 32x32
    python -m nps generate --corpus "folder:/tmp/photos?size=32&colour=rgb" ...

The README's colour grid is made this way (its exact command is there).  Tiles are
cut from the top-left corner; the partial tiles at the right and bottom edges are
dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def photo_tiles(tile: int = 32) -> dict[str, np.ndarray]:
    """{"china": (rows,cols,tile,tile,3) uint8, "flower": ...}: each sample photo's whole tiles on their grid."""
    from sklearn.datasets import load_sample_images
    data = load_sample_images()
    out = {}
    for name, image in zip(data.filenames, data.images):
        rows, cols = (s // tile for s in image.shape[:2])
        grid = image[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile, 3).swapaxes(1, 2)
        out[Path(name).stem] = np.ascontiguousarray(grid)
    return out


def write_folder(out: Path, tile: int = 32) -> dict[str, int]:
    """Write ``out/<photo>/r<row>c<col>.png`` for every tile; returns the tile count per class folder."""
    from PIL import Image
    counts = {}
    for name, grid in photo_tiles(tile).items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                Image.fromarray(grid[r, c], "RGB").save(folder / f"r{r:02d}c{c:02d}.png")
        counts[name] = grid.shape[0] * grid.shape[1]
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder to write (created; existing tiles of the same name are overwritten)")
    p.add_argument("--tile", type=int, default=32, help="tile side in pixels, 4..128 (default: %(default)s)")
    args = p.parse_args(argv)
    if not 4 <= args.tile <= 128:
        print(f"error: --tile {args.tile} is out of range; use 4..128.", file=sys.stderr)
        return 2
    counts = write_folder(Path(args.out).expanduser(), args.tile)
    print(f"wrote {', '.join(f'{n} tiles of {k}' for k, n in counts.items())} ({args.tile}x{args.tile}) under "
          f"{args.out}; use --corpus \"folder:{args.out}?size={args.tile}&colour=rgb\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
