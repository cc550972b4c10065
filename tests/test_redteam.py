"""The held-out list (issue 9): attacks on the hardened lab, each a class of defect that was still open.

Every test failed before its fix.  CLI cases expect exit 2, exactly one ``error:`` line and
no traceback; app cases expect one ``NPSError`` line (shown as one ``st.error``) or a
page that still renders.  What was tried and what each gave is in the README's hosting
section and in the redteam report.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nps.cli import main
from nps.config import GenerationConfig
from nps.errors import NPSError
from nps.record import ProvenanceRecord

SMALL = {"corpus": "digits", "n": 2, "window": 3, "seed_size": 2, "radius": 1, "k": 8, "encoder": "pca",
         "batch_size": 2}


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line(rc: int, err: str, needle: str = "") -> None:
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING")]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:"), (rc, err)
    assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def rec(digits) -> ProvenanceRecord:
    from nps.engine.sampler import generate
    return generate(GenerationConfig(**SMALL), digits)


@pytest.fixture(scope="module")
def rec_arrays(rec) -> dict[str, np.ndarray]:
    return rec.to_arrays()


def _npz(arrays: dict[str, np.ndarray], extra: tuple[str, int] | None = None, dup: dict | None = None) -> bytes:
    """An npz of ``arrays``; ``extra`` = (member, MB): a member of that many MB of zeros, deflated (a zip bomb)."""
    from numpy.lib import format as fmt
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, a in arrays.items():
            if extra and name == extra[0]:
                continue
            b = io.BytesIO()
            np.save(b, a)
            z.writestr(f"{name}.npy", b.getvalue())
        for name, a in (dup or {}).items():
            b = io.BytesIO()
            np.save(b, a)
            with pytest.warns(UserWarning, match="Duplicate"):
                z.writestr(f"{name}.npy", b.getvalue())
        if extra:
            name, mb = extra
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                fmt.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                               "shape": (mb * 2**20 // 64, 8, 8)})
                chunk = bytes(16 * 2**20)
                for _ in range(mb // 16):
                    f.write(chunk)
    return buf.getvalue()


# --------------------------------------------------------------------------- record files: bounded reads
@pytest.mark.parametrize("member", ["junk", "images"])
def test_record_zip_bomb_is_never_inflated(rec_arrays, member, tmp_path) -> None:
    """A 300 MB member deflated to ~1 MB: np.load inflated it (1 GB for a 4.7 MB file was measured).

    Unknown members are no longer read at all; a record member larger than the upload
    budget is refused from its declared size.  Peak memory stays far below the bomb.
    """
    from app_support.state import record_from_npz_bytes
    data = _npz(rec_arrays, extra=(member, 320))
    assert len(data) < 3e6
    (tmp_path / "bomb.npz").write_bytes(data)
    tracemalloc.start()
    try:
        for load in (lambda: record_from_npz_bytes(data),
                     lambda: ProvenanceRecord.from_arrays(
                         __import__("nps.record", fromlist=["x"]).read_record_arrays(
                             tmp_path / "bomb.npz", "record", 64 << 20))):
            if member == "junk":
                assert len(load()) == SMALL["n"]  # the record itself is fine; the junk is skipped unread
            else:
                with pytest.raises(NPSError, match="unpacks to more than"):
                    load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MB while reading a 320 MB bomb"


def test_record_with_duplicate_or_too_many_members_is_refused(rec_arrays, tmp_path, capsys) -> None:
    """A zip may hold two members of one name; np.load silently took one (another reader may take the other)."""
    other = rec_arrays["images"].copy()
    other[0] = 255 - other[0]
    dup = tmp_path / "dup.npz"
    dup.write_bytes(_npz(rec_arrays, dup={"images": other}))
    rc, _, err = _cli(["evaluate", str(dup), "--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"],
                      capsys)
    _one_line(rc, err, "two members named 'images.npy'")
    many = dict(rec_arrays) | {f"k{i}": np.zeros(1) for i in range(100)}
    p = tmp_path / "many.npz"
    p.write_bytes(_npz(many))
    rc, _, err = _cli(["trace", str(p), "--y", "0", "--x", "0"], capsys)
    _one_line(rc, err, "members")


# --------------------------------------------------------------------------- record validator
def _with_config(arrays: dict, **changes) -> dict:
    cfg = json.loads(str(arrays["config"]))
    cfg.update(changes)
    return {**arrays, "config": np.array(json.dumps(cfg))}


@pytest.mark.parametrize(("change", "needle"), [
    ({"image_shape": 5}, "image_shape 5 must be a list"),
    ({"engine": "three"}, "config engine"),
    ({"sigma_used": [1]}, "config sigma_used"),
])
def test_record_facts_of_the_wrong_type_are_one_line(rec_arrays, change, needle, tmp_path, capsys) -> None:
    """Config facts outside the GenerationConfig schema reached `list(shape)`: exit 1, 'internal error'."""
    p = tmp_path / "r.npz"
    np.savez(p, **_with_config(rec_arrays, **change))
    for argv in (["evaluate", str(p), "--out", str(tmp_path / "ev"), "--no-scores"],
                 ["trace", str(p), "--y", "0", "--x", "0"]):
        rc, _, err = _cli(argv, capsys)
        _one_line(rc, err, needle)


def test_uint64_values_past_int64_are_refused_not_wrapped(rec_arrays, tmp_path, capsys) -> None:
    """pool_size of 2**64-1 passed ``>= 1`` as uint64 and became -1 in the int64 contract."""
    p = tmp_path / "r.npz"
    np.savez(p, **{**rec_arrays, "pool_size": np.full(rec_arrays["pool_size"].shape, 2**64 - 1, np.uint64)})
    rc, _, err = _cli(["evaluate", str(p), "--out", str(tmp_path / "ev"), "--no-scores"], capsys)
    _one_line(rc, err, "past the int64 range")


def test_a_subset_as_large_as_the_corpus_writes_a_readable_record(tmp_path, capsys) -> None:
    """`--subset 1442` on digits loads the whole corpus (no row map), and the validator refused the record."""
    out = tmp_path / "s.npz"
    rc, _, err = _cli(["generate", "--corpus", "digits", "--subset", "1442", "--n", "2", "--window", "3",
                       "--seed-size", "2", "--k", "8", "--encoder", "pca", "--out", str(out)], capsys)
    assert rc == 0, err
    rc, _, err = _cli(["evaluate", str(out), "--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"],
                      capsys)
    assert rc == 0, err


def test_writers_refuse_a_record_their_readers_would_refuse(rec, tmp_path) -> None:
    import dataclasses
    bad = dataclasses.replace(rec, config={**rec.config, "image_shape": 5})
    with pytest.raises(NPSError, match="image_shape"):
        bad.save(tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_train_ids_that_are_not_the_corpus_rows_are_refused(tmp_path, capsys) -> None:
    """A subset record's row map is what makes it checkable alone; one that lies was trusted."""
    from nps.corpora import load_corpus
    from nps.engine.sampler import generate
    sub = generate(GenerationConfig(**{**SMALL, "subset": 200}), load_corpus("digits", 200)).to_arrays()
    for ids in (sub["train_ids"] + 1, sub["train_ids"] + 10**15):
        p = tmp_path / "r.npz"
        np.savez(p, **{**sub, "train_ids": ids})
        for argv in (["evaluate", str(p), "--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"],
                     ["trace", str(p), "--y", "0", "--x", "0"]):
            rc, _, err = _cli(argv, capsys)
            _one_line(rc, err, "train_ids")


def test_trace_refuses_a_pixel_whose_recorded_source_does_not_hold(rec, digits, tmp_path, capsys) -> None:
    """trace printed 'this provenance is exact' for a pixel whose source pixel had another value."""
    src = rec.source_index.copy()
    ys, xs = np.nonzero((rec.images[0] > 50) & (rec.pool_size[0] >= 1))
    order = {tuple(p): i for i, p in enumerate(rec.order.tolist())}
    y, x = max(zip(ys.tolist(), xs.tolist()), key=lambda p: order[p])  # sampled late: not a seed pixel
    sy, sx = int(rec.source_y[0, y, x]), int(rec.source_x[0, y, x])
    src[0, y, x] = int(np.flatnonzero(digits.train[:, sy, sx] == 0)[0])
    p = tmp_path / "t.npz"
    np.savez(p, **{**rec.to_arrays(), "source_index": src})
    rc, out, err = _cli(["trace", str(p), "--y", str(y), "--x", str(x)], capsys)
    _one_line(rc, err, "its recorded source")
    assert "exact" not in out


def test_corpus_name_is_stored_as_read(tmp_path, capsys) -> None:
    """`--corpus 'digits '` ran on digits but stored 'digits ', which evaluate then refused."""
    out = tmp_path / "s.npz"
    rc, _, err = _cli(["generate", "--corpus", "digits ", "--n", "1", "--window", "3", "--seed-size", "2",
                       "--k", "8", "--encoder", "pca", "--out", str(out)], capsys)
    assert rc == 0, err
    assert ProvenanceRecord.load(out).config["corpus"] == "digits"
    rc, _, err = _cli(["evaluate", str(out), "--out", str(tmp_path / "ev"), "--no-scores", "--no-memorisation"],
                      capsys)
    assert rc == 0, err


# --------------------------------------------------------------------------- flags and environment
GEN = ["generate", "--corpus", "digits", "--n", "1", "--window", "3", "--seed-size", "2", "--k", "8",
       "--encoder", "pca"]


@pytest.mark.parametrize("flag", ["--out", "--grid"])
def test_output_names_too_long_are_refused_before_the_run(flag, tmp_path, capsys, monkeypatch) -> None:
    """A 300-byte name crashed stat() (exit 1, 'internal error'); a 240-byte one passed the checks and then
    failed after the run, because the writer's temp name (.<name>.<pid>.<random>.tmp) was too long."""
    import nps.engine.sampler

    def forbidden(*a, **k):
        raise AssertionError("the run started before the output name was checked")

    suffix = ".npz" if flag == "--out" else ".png"
    long = str(tmp_path / ("y" * 300 + suffix))
    base = [*GEN, "--out", str(tmp_path / "r.npz")] if flag == "--grid" else GEN
    with monkeypatch.context() as m:
        m.setattr(nps.engine.sampler, "generate", forbidden)
        rc, _, err = _cli([*base, flag, long], capsys)
    _one_line(rc, err, "too long")
    ok = tmp_path / ("z" * 240 + suffix)
    rc, _, err = _cli([*base, flag, str(ok)], capsys)
    assert rc == 0 and ok.is_file(), err


def test_evaluate_and_embed_folder_names_too_long(tmp_path, rec, capsys) -> None:
    p = rec.save(tmp_path / "r.npz")
    rc, _, err = _cli(["evaluate", str(p), "--out", "z" * 5000, "--no-scores"], capsys)
    _one_line(rc, err)
    long = str(tmp_path / ("e" * 300 + ".npz"))
    rc, _, err = _cli(["embed", "--corpus", "digits", "--encoder", "pca", "--out", long], capsys)
    _one_line(rc, err, "too long")


@pytest.mark.parametrize("argv", [
    ["ablate", "--corpus", "digits", "--encoders", "pca,../x", "--quick"],
    ["ablate", "--corpus", "digits", "--encoders", ",,", "--quick"],
    ["evaluate", "RECORD", "--encoder", "../zz", "--no-scores"],
])
def test_encoder_name_typos_are_refused_up_front(argv, rec, tmp_path, capsys) -> None:
    """ablate printed a 'note: skipped' line per bad name and then an error (several lines); evaluate silently
    dropped the embedding memorisation check."""
    argv = [str(rec.save(tmp_path / "r.npz")) if a == "RECORD" else a for a in argv]
    rc, _, err = _cli([*argv, "--out", str(tmp_path / "o")], capsys)
    _one_line(rc, err, "unknown")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "100000", "²"])
def test_nps_threads_nonsense_is_one_line(value, tmp_path, capsys, monkeypatch) -> None:
    """NPS_THREADS=abc crashed int() (exit 1); 100000 made OpenMP abort the process; 0 and -1 were silent."""
    monkeypatch.setenv("NPS_THREADS", value)
    rc, _, err = _cli([*GEN, "--out", str(tmp_path / "r.npz")], capsys)
    _one_line(rc, err, "NPS_THREADS")
    assert not (tmp_path / "r.npz").exists()


# --------------------------------------------------------------------------- the cache folder
def test_cache_ls_neither_hangs_on_a_fifo_nor_prints_escape_codes(cache_dir) -> None:
    """A FIFO named like an entry blocked np.load in `cache ls` forever; meta text reached the terminal raw."""
    os.mkfifo(cache_dir / "pca-fifo0000.npz")
    np.savez(cache_dir / "pca-esc00000.npz",
             __meta__=np.array(json.dumps({"created": "\x1b[31mred\nfake line", "built_from": "\x1b]0;t\x07"})))
    env = {**os.environ, "NPS_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "nps", "cache", "ls"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "fifo0000" in done.stdout and "esc00000" in done.stdout
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "fake line" in done.stdout
    assert not any(line.startswith("fake line") for line in done.stdout.splitlines())


# --------------------------------------------------------------------------- the app
@pytest.fixture
def fresh_resources():
    import streamlit as st

    from app_support import resources
    st.cache_resource.clear()
    st.cache_data.clear()
    yield resources
    st.cache_resource.clear()
    st.cache_data.clear()


def test_uploads_must_fit_their_corpus(fresh_resources, rec_arrays) -> None:
    """Without corpus_size/image_shape in its config a record's ids and canvas were bounded by nothing:
    the analysis page crashed (Streamlit's redacted error box) or indexed past the corpus."""
    from app_support.state import record_npz_bytes
    cfg = {k: v for k, v in json.loads(str(rec_arrays["config"])).items() if k not in ("corpus_size", "image_shape")}
    src = rec_arrays["source_index"].copy()
    src[0, -1, -1] = 10**6
    big = {**rec_arrays, "config": np.array(json.dumps(cfg)), "source_index": src}
    with pytest.raises(NPSError, match="train id 1000000"):
        fresh_resources.uploaded_record(_npz(big))
    small = {k: (v[:, :4, :4] if v.ndim == 3 and k != "order" else v) for k, v in rec_arrays.items()}
    small.update(config=np.array(json.dumps(cfg)), order=np.stack(np.unravel_index(np.arange(16), (4, 4)), 1),
                 shell=np.zeros(16, np.int64), source_y=np.minimum(small["source_y"], 3),
                 source_x=np.minimum(small["source_x"], 3))
    with pytest.raises(NPSError, match="4x4 images do not match"):
        fresh_resources.uploaded_record(_npz(small))
    good = ProvenanceRecord.from_arrays(rec_arrays)
    assert len(fresh_resources.uploaded_record(record_npz_bytes(good))) == SMALL["n"]


@pytest.mark.parametrize("value", ["²", "9" * 5000, "١٢", "[click](https://example.invalid) ![x](https://e.invalid/p.png)"])
def test_link_query_values_never_crash_and_are_shown_inert(value) -> None:
    """`?seed=²` passed str.isdigit and crashed int(); 5000 digits crashed int(); link text was drawn as markdown
    (a shared link could put a clickable link or a remote picture on the visitor's page)."""
    from app_support.state import sidebar_from_query
    defaults = {"corpus": "digits", "subset": None, "encoder": "pca", "seed": 0}
    query = {"seed": value, "subset": value, "corpus": value, "encoder": value}
    out, notes = sidebar_from_query(query, ["digits"], ["pca"], defaults)
    assert out == defaults and len(notes) == 4
    for note in notes:
        assert "](" not in note and "![" not in note and len(note) < 200


def test_app_page_survives_a_hostile_link() -> None:
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.query_params.update(corpus="digits", seed="²", subset="9" * 5000)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.number_input(key="sb_seed").value == 0


# --------------------------------------------------------------------------- data files
def test_idx_file_is_read_no_further_than_its_header_declares(tmp_path) -> None:
    """A .gz idx whose header declares 10 images but inflates to 320 MB was read whole (f.read()) before
    its length was checked; one declaring an absurd shape is refused from the header."""
    import gzip
    import struct

    from nps.corpora import _read_idx
    p = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=1) as f:
        f.write(struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28))
        chunk = bytes(16 * 2**20)
        for _ in range(20):
            f.write(chunk)
    tracemalloc.start()
    try:
        with pytest.raises(NPSError, match="not an intact idx file"):
            _read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak / 2**20:.0f} MB"
    q = tmp_path / "huge-idx3-ubyte"
    q.write_bytes(struct.pack(">HBBIII", 0, 8, 3, 2**31, 2**16, 2**16))
    with pytest.raises(NPSError, match="declares"):
        _read_idx(q)


# --------------------------------------------------------------------------- a full disk
_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))
from nps.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_is_one_line_and_leaves_no_half_file(rec, tmp_path) -> None:
    """evaluate (and ablate, sweep, report, plots) wrote metrics, tables and pictures with plain writes: a full
    disk was 'internal error (OSError: ...)' (exit 1) and left a truncated file behind.  Now every output
    goes through nps.cache.atomic_write."""
    argv = ["evaluate", str(rec.save(tmp_path / "r.npz")), "--no-scores", "--no-memorisation"]
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, *argv, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    _one_line(done.returncode, done.stderr, "cannot write")
    for f in out.iterdir():
        assert not f.name.startswith("."), f"temp file left: {f.name}"
        if f.suffix == ".png":
            from PIL import Image
            with Image.open(f) as im:
                im.load()  # complete, not truncated at the limit


# --------------------------------------------------------------------------- picture decoders
_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


def _no_ghostscript(monkeypatch) -> list:
    """Record (and stop) any call into Pillow's EPS plugin, which runs Ghostscript (readers swallow errors)."""
    from PIL import EpsImagePlugin
    calls: list = []

    def forbidden(*a, **k):
        calls.append(a)
        raise AssertionError("an EPS file reached Pillow's EPS plugin (it runs Ghostscript)")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", forbidden)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    return calls


def test_an_uploaded_picture_reaches_only_the_advertised_decoders(monkeypatch) -> None:
    """Pillow chooses a decoder by content: an EPS renamed .png was handed to Ghostscript on the server."""
    from app_support.state import image_from_upload
    calls = _no_ghostscript(monkeypatch)
    with pytest.raises(NPSError, match="not a picture the app can read"):
        image_from_upload(_EPS, (8, 8))
    assert not calls


def test_a_folder_image_reaches_only_the_listed_decoders(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from nps.corpora.image_folder import read_image_folder
    calls = _no_ghostscript(monkeypatch)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "a" / "evil.png").write_bytes(_EPS)
    with pytest.raises(NPSError, match=r"evil\.png"):
        read_image_folder(tmp_path, size=8)
    assert not calls


def test_a_16_bit_or_rotated_upload_gives_the_pixels_the_folder_reader_gives() -> None:
    """Issue 9 item 7 fixed 16-bit PNGs for folders only: an uploaded one still became 97 % white; a phone
    photo's EXIF rotation was ignored."""
    from PIL import Image

    from app_support.state import image_from_upload
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    out = image_from_upload(buf.getvalue(), (8, 8))
    assert (out == 255).mean() < 0.1 and abs(float(out.mean()) - 127.5) < 2
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (0, 0, 20, 20))  # left half white as stored; EXIF 6 shows it rotated: top half white
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    rows = image_from_upload(buf.getvalue(), (8, 8)).mean(axis=1)
    assert rows[:3].min() > 200 and rows[5:].max() < 50


def test_deeply_nested_json_beside_weights_is_one_line(tmp_path, monkeypatch) -> None:
    """json raises RecursionError (not ValueError) for deep nesting; the manifest and report readers caught
    only ValueError, so a '[[[[...' file crashed every command that looks up weights."""
    from nps import shipped
    from nps.encoders.simclr import read_report
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "w.json").write_text(deep)
    assert read_report(tmp_path / "w.safetensors") == {}
    (tmp_path / shipped.MANIFEST_NAME).write_text(deep)
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(NPSError, match="manifest"):
        shipped.read_manifest()


def test_merge_refuses_shards_whose_shells_differ(rec, tmp_path, capsys) -> None:
    """merge compared config and order but kept the first shard's shells for every sample."""
    a = rec.save(tmp_path / "a.npz")
    other = rec.to_arrays()
    other["sample_id"] = other["sample_id"] + len(rec)
    shell = other["shell"].copy()
    shell[-1] += 5
    np.savez(tmp_path / "b.npz", **{**other, "shell": shell})
    rc, _, err = _cli(["merge", str(a), str(tmp_path / "b.npz"), "--out", str(tmp_path / "m.npz")], capsys)
    _one_line(rc, err, "different configs")
    assert not (tmp_path / "m.npz").exists()
