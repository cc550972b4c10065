"""Named stages before a run: the progress bar says what the server is doing, not a bare spinner.

A generation's slow parts on a cold server are not the sampling: they are loading the
corpus, fitting the encoder, embedding every training image (a minute or two for
MNIST's 70,000 images with SimCLR on 2 CPU cores) and building the index.  Each of
those is a cached resource (:mod:`app_support.resources`) that runs without a callback,
so :func:`prepare` calls them one by one *before* the generation, naming each stage on
the run's :class:`app_support.ui.LiveProgress` bar; the generation then finds them all
cached and the bar goes on with "sampling pixel i/M".  The engine's callback signature
is unchanged: the stage names live only here.
"""

from __future__ import annotations

import threading
from typing import Any

from app_support import resources
from nps.config import GenerationConfig
from nps.constraints import active

_PREPARED: set[tuple] = set()  # pool fields already built in this server process (a later run skips the stages)
_LOCK = threading.Lock()


def prepared(config: GenerationConfig) -> bool:
    """Whether :func:`prepare` already built ``config``'s pools in this server process (no cold stages left)."""
    with _LOCK:
        return (config.corpus, config.subset, resources.pool_fields(config)) in _PREPARED


#: Corpora up to this many images (train + test) are embedded without asking first (digits: a second).
EMBED_ASK_OVER = 20_000


def cold_embedding(config: GenerationConfig) -> str | None:
    """What building ``config``'s pools would embed now, if that is slow (one phrase), else None.

    None when the pools are built in this process, the embedding table is on disk, or the
    corpus is small.  A shipped record needs no pools, but replaying its funnel does.
    """
    if not config.per_sample_pools() or prepared(config):
        return None
    corpus = resources.corpus(config.corpus, config.subset)
    images = len(corpus.train) + len(corpus.test)
    if images <= EMBED_ASK_OVER:
        return None
    from nps.lab.cost import EMBED_COLD_S, format_seconds
    from nps.retrieval import embedding_cached
    if embedding_cached(corpus, resources.encoder(config.encoder, config.corpus, config.subset)):
        return None
    return (f"embedding {images:,} images with {config.encoder} once on this server (up to "
            f"{format_seconds(EMBED_COLD_S).removeprefix('about ')} here; cached on disk afterwards)")


def pools_ready(record: Any, what: str, key: str) -> bool:
    """Whether replaying ``record``'s pools may start now; else say what it costs and offer a button.

    A record opened from disk (a shipped lesson or preset) needs no embedding, but its funnel
    and explainer replay the representation's pools: on MNIST with SimCLR that first embeds
    70,000 images (a minute or two here), which must not happen behind a spinner unasked.
    """
    import streamlit as st
    if st.session_state.get(f"pools_go_{key}"):
        return True
    try:
        cold = cold_embedding(GenerationConfig.from_dict(record.config))
    except Exception:  # the replay itself reports a bad record or corpus with its one line
        return True
    if cold is None:
        return True
    st.info(f"{what} replays this record's candidate pools, which first needs {cold}.", icon=":material/timer:")
    st.button(f"Build the pools and show {what.lower()}", key=f"btn_pools_{key}", icon=":material/play_arrow:",
              on_click=st.session_state.__setitem__, args=(f"pools_go_{key}", True))
    return False


def stage_names(config: GenerationConfig) -> list[str]:
    """The stages :func:`prepare` walks through for ``config``, in order (the last is always sampling).

    >>> stage_names(GenerationConfig(corpus="digits", constraints=("ssd",)))
    ['loading corpus', 'sampling']
    """
    names = ["loading corpus"]
    if config.per_sample_pools():  # an embedding index to build (nps.constraints.representation)
        names += ["fitting encoder", "embedding", "building index"]
    return [*names, "sampling"]


def prepare(config: GenerationConfig, live: Any = None) -> Any:
    """Load what ``config`` needs, stage by stage, naming each on ``live`` (a LiveProgress, or None).

    Returns:
        the loaded corpus.
    Raises:
        NPSError: the corpus, the encoder or its weights are missing or refused.
    """
    names = stage_names(config)
    total = len(names)

    def say(i: int, detail: str = "") -> None:
        if live is not None and hasattr(live, "stage"):
            live.stage(f"stage {i + 1}/{total}: {names[i]}{detail}…")

    say(0, f" {config.corpus}" + (f" (subset {config.subset:,})" if config.subset else ""))
    corpus = resources.corpus(config.corpus, config.subset)
    fields = (config.corpus, config.subset, resources.pool_fields(config))
    with _LOCK:
        done = fields in _PREPARED
    if config.per_sample_pools() and not done:
        say(1, f" {config.encoder}")
        enc = resources.encoder(config.encoder, config.corpus, config.subset)
        say(2, f" {len(corpus.train) + len(corpus.test):,} images with {config.encoder} "
               "(cached on disk after the first time)")
        from nps.retrieval import embed_corpus
        embed_corpus(corpus, enc)
        say(3, f" over {len(corpus.train):,} training embeddings")
    resources.pools(config)
    with _LOCK:
        _PREPARED.add(fields)
    say(total - 1, " pixels")
    return corpus


def open_preset(name: str):
    """The preset's record, built with a progress bar naming each stage (corpus, encoder, embedding, sampling).

    One way to open a preset for every page (Welcome's cards, Analysis and the explainer when
    they have no record, an Analysis permalink); a preset already built is read from disk.
    Returns None after an ``st.error`` line if it cannot be opened.
    """
    from app_support.ui import LiveProgress, attempt
    from nps.lab.presets import PRESETS, is_built, load_preset
    preset = PRESETS[name]
    cfg = preset.config
    if is_built(name):  # cached: opened from disk, no stages to show
        return attempt(load_preset, name, what=f"opening preset {name}")
    live = LiveProgress(f"Building preset {name}", f"preset_{name}", scale=6 if cfg.corpus == "digits" else 2)
    c = attempt(prepare, cfg, live, what=f"preparing preset {name}")
    built = None
    if c is not None:
        built = attempt(load_preset, name, c, resources.pools(cfg) if active(cfg, "images") else None, live,
                        what=f"building preset {name}")
    live.done()
    return built


def no_record_picker(key_prefix: str, message: str) -> None:
    """Say there is no record, offer every preset as a button, open the chosen one; then stop the page."""
    import streamlit as st

    from app_support.ui import add_record
    from nps.lab.presets import PRESETS
    st.info(message)
    for col, preset in zip(st.columns(len(PRESETS)), PRESETS.values()):
        if col.button(f"Open preset: {preset.title}", key=f"btn_{key_prefix}_preset_{preset.name}"):
            rec = open_preset(preset.name)
            if rec is not None:
                add_record(f"preset: {preset.name}", rec)
                st.rerun()
    st.stop()
