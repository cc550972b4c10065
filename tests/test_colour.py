"""Colour without CIFAR: a folder corpus at a chosen size in RGB, generated through the CLI, end to end.

The folder is written by the test (two classes of smooth colour patterns), so it runs on
every machine.  What is pinned: the corpus name carries the size and colour (its one
canonical spelling), the record's images are (N,H,W,3) uint8, every generated pixel is
the RGB pixel at its traced source, and the record alone (with the user's --corpus)
reproduces the run bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nps.cli import main
from nps.corpora import ENTRIES, canonical_name, corpus_status, load_corpus, parse_corpus_name
from nps.errors import NPSError
from nps.provenance import check_provenance
from nps.record import ProvenanceRecord

SIDE = 12
FLAGS = ["--n", "2", "--window", "3", "--seed-size", "2", "--radius", "1", "--k", "4", "--seed", "1"]


def write_colour_folder(root: Path, n: int = 8) -> Path:
    """root/<red|blue>/<i>.png: 20x20 RGB patterns whose three channels differ everywhere."""
    from PIL import Image
    yy, xx = np.mgrid[:20, :20]
    for c, base in (("red", (210, 40, 60)), ("blue", (30, 90, 220))):
        (root / c).mkdir(parents=True)
        for i in range(n):
            a = np.stack([np.clip(b * (0.55 + 0.45 * np.sin((xx + 2 * i) / 3.0 + ch) * np.cos(yy / 4.0)), 0, 255)
                          for ch, b in enumerate(base)], -1).astype(np.uint8)
            Image.fromarray(a, "RGB").save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(folder, corpus name, record path) of one CLI run on a colour folder at SIDE x SIDE."""
    tmp = tmp_path_factory.mktemp("colour")
    root = write_colour_folder(tmp / "imgs")
    name = f"folder:{root}?size={SIDE}&colour=rgb"
    out = tmp / "rgb.npz"
    assert main(["generate", "--corpus", name, *FLAGS, "--out", str(out), "--grid", str(tmp / "rgb.png")]) == 0
    return root, name, out


def test_colour_generation_end_to_end(colour_run: tuple[Path, str, Path]) -> None:
    _root, name, out = colour_run
    rec = ProvenanceRecord.load(out)
    assert rec.images.shape == (2, SIDE, SIDE, 3) and rec.images.dtype == np.uint8
    assert rec.config["corpus"] == name  # the record names the size and colour it was made at
    corpus = load_corpus(rec.config["corpus"])
    assert corpus.train.shape[1:] == (SIDE, SIDE, 3) and corpus.name == name
    # The invariant, written out: each generated pixel is the RGB pixel at its traced source.
    src = rec.source_index
    assert (src >= 0).all()
    np.testing.assert_array_equal(rec.images, corpus.train[src, rec.source_y, rec.source_x])
    assert check_provenance(rec, corpus.train) == 0
    assert (rec.images[..., 0] != rec.images[..., 2]).mean() > 0.9  # colour, not gray copied thrice


def test_record_reproduces_the_colour_run(colour_run: tuple[Path, str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root, _name, out = colour_run
    rec = ProvenanceRecord.load(out)
    again = tmp_path / "again.npz"
    # The corpus flag in another spelling of the same corpus, as a user would type it.
    assert main(["generate", "--corpus", f"folder:{root}?color=RGB&size={SIDE}", *FLAGS, "--out", str(again)]) == 0
    rec2 = ProvenanceRecord.load(again)
    assert rec2.config["corpus"] == f"folder:{root}?color=RGB&size={SIDE}"  # as given (the config's own field)
    np.testing.assert_array_equal(rec2.images, rec.images)
    np.testing.assert_array_equal(rec2.source_index, rec.source_index)
    capsys.readouterr()
    # trace reads the record's corpus only from the user's --corpus, in any spelling of it.
    assert main(["trace", str(out), "--corpus", f"folder:{root}?colour=rgb&size={SIDE}", "--y", "3", "--x", "4"]) == 0
    capsys.readouterr()
    for flag, needle in ((None, "never chooses which folder"), (f"folder:{root}?size={SIDE}", "not the record's")):
        argv = ["trace", str(out), "--y", "0", "--x", "0"] + (["--corpus", flag] if flag else [])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_gray_and_rgb_of_one_folder_differ_only_by_colour(colour_run: tuple[Path, str, Path]) -> None:
    root = colour_run[0]
    gray, rgb = load_corpus(f"folder:{root}?size={SIDE}"), load_corpus(f"folder:{root}?size={SIDE}&colour=rgb")
    assert gray.train.shape == (14, SIDE, SIDE) and rgb.train.shape == (14, SIDE, SIDE, 3)  # 1 in 5 is test
    # Pillow's convert("L"): L = (299 R + 587 G + 114 B) / 1000, rounded; resizing after converting
    # can move a value by one.
    luma = (rgb.train.astype(np.int64) @ np.array([299, 587, 114])) / 1000
    assert np.abs(luma - gray.train).max() <= 1.5
    assert gray.content_hash != rgb.content_hash and gray.name != rgb.name


# --------------------------------------------------------------------------- the name's options

@pytest.mark.parametrize(("given", "canonical"), [
    ("folder:/p", "folder:/p"),
    (" folder:/p?size=28&colour=gray ", "folder:/p"),                 # defaults are not written
    ("folder:/p?colour=rgb&size=32", "folder:/p?size=32&colour=rgb"),  # the table's order
    ("folder:/p?Color=RGB&SIZE=32", "folder:/p?size=32&colour=rgb"),   # US spelling, any case
    ("folder:/p?colour=grey", "folder:/p"),
    ("folder:/a:b?size=8", "folder:/a:b?size=8"),                      # a colon in the path is the path's
    ("digits", "digits"),
])
def test_canonical_names(given: str, canonical: str) -> None:
    assert canonical_name(given) == canonical


@pytest.mark.parametrize(("name", "needle"), [
    ("folder:/p?size=0", "image size 0 .* out of range"),
    ("folder:/p?size=257", "image size 257 .* out of range"),
    ("folder:/p?size=3.5", "image size '3.5' .* not a whole number"),
    ("folder:/p?size=", "image size '' .* not a whole number"),
    ("folder:/p?colour=blue", "colour 'blue' .* unknown"),
    ("folder:/p?depth=3", "unknown corpus option 'depth'"),
    ("folder:/p?size", "not key=value"),
    ("folder:/p?size=8&size=9", "given twice"),
    ("digits?size=8", "takes no options"),
    ("folder?size=8", "needs its PATH"),
    ("folder:?size=8", "needs a path"),
    ("folder:/p?colour=r\ngb", "colour 'r\\\\ngb'"),               # a newline in the name stays escaped
])
def test_bad_options_are_one_line(name: str, needle: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NPSError, match=needle):
        parse_corpus_name(name)
    assert main(["generate", "--corpus", name, *FLAGS, "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_keyword_options_agree_with_the_name(colour_run: tuple[Path, str, Path]) -> None:
    root = colour_run[0]
    c = load_corpus(f"folder:{root}", image_size=SIDE, color=True)
    assert c.name == f"folder:{root}?size={SIDE}&colour=rgb" and c.image_shape == (SIDE, SIDE, 3)
    assert load_corpus(f"folder:{root}?size={SIDE}", image_size=SIDE).name == f"folder:{root}?size={SIDE}"
    with pytest.raises(NPSError, match="give it once"):
        load_corpus(f"folder:{root}?size=16", image_size=SIDE)


def test_every_entry_is_listed_once() -> None:
    rows = corpus_status()
    assert [r.name for r in rows] == [e.pattern for e in ENTRIES.values()]
    assert [r.name for r in rows if r.parameterised] == ["folder:PATH", "mnist-deformed:N"]
    for e in ENTRIES.values():
        assert e.shape and e.colour and e.licence and e.how_to_get


def test_sample_photos_folder_is_the_photos_tiled(tmp_path: Path) -> None:
    """tools/sample_photos_folder.py (the README's colour grid): every tile read back is its crop of the photo."""
    import importlib.util

    from sklearn.datasets import load_sample_image
    spec = importlib.util.spec_from_file_location("sample_photos_folder",
                                                  Path(__file__).resolve().parents[1] / "tools/sample_photos_folder.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(tmp_path / "photos"), "--tile", "64"]) == 0
    assert tool.main([str(tmp_path / "x"), "--tile", "2"]) == 2
    corpus = load_corpus(f"folder:{tmp_path / 'photos'}?size=64&colour=rgb")
    assert corpus.class_names == ("china", "flower") and corpus.image_shape == (64, 64, 3)
    assert len(corpus) + len(corpus.test) == 2 * (427 // 64) * (640 // 64)
    china = load_sample_image("china.jpg")
    np.testing.assert_array_equal(corpus.train[0], china[:64, :64])          # r00c00, the first file
    np.testing.assert_array_equal(corpus.train[1], china[:64, 64:128])       # r00c01
