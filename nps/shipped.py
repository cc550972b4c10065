"""Where the project's own trained weights live: ``nps/weights/<kind>-<corpus>.safetensors``.

A light module (no torch), so that choosing the default encoder can ask whether
weights ship without loading anything.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_weights(kind: str, corpus_name: str) -> Path:
    """The path of the ``kind`` ("simclr", "classifier") weights for a corpus, present or not."""
    safe = corpus_name.replace("/", "_").replace(":", "_")
    return WEIGHTS_DIR / f"{kind}-{safe}.safetensors"
