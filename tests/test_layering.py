"""The library boundary: nps/ imports neither streamlit nor app_support, the engine not the lab; import nps is cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _offenders(folder: Path, banned: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(ROOT)}: {m}" for p in sorted(folder.rglob("*.py")) for m in sorted(_imports(p))
            if m.split(".")[0] in banned or m.startswith(tuple(b + "." for b in banned if "." in b))
            or m in banned]


def test_nps_imports_neither_streamlit_nor_app_support():
    assert _offenders(ROOT / "nps", ("streamlit", "app_support")) == []


def test_the_engine_never_imports_the_lab():
    assert _offenders(ROOT / "nps" / "engine", ("nps.lab",)) == []


def test_the_scan_sees_a_banned_import(tmp_path):
    (tmp_path / "bad.py").write_text("def f():\n    from app_support.ui import show_error\n    import streamlit\n")
    found = _imports(tmp_path / "bad.py")
    assert "app_support.ui" in found and "streamlit" in found


def test_import_nps_is_cheap_and_the_public_api_resolves():
    code = ("import sys, nps\n"
            "heavy = sorted(m for m in ('torch', 'faiss', 'numpy', 'streamlit', 'nps.config') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "assert nps.generate.__module__ == 'nps.engine.sampler' and nps.evaluate.__name__ == 'record_metrics'\n"
            "assert {'GenerationConfig', 'load_corpus', 'load_record', 'save_record', 'NPSError'} <= set(dir(nps))\n"
            "try:\n    nps.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no error')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
