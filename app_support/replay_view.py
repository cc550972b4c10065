"""The replay of one record: frame by frame, with Play, step controls and shell jumps."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from app_support.ui import ss_default
from nps.lab.plots import to_rgb, upscale
from nps.record import ProvenanceRecord

UNFILLED = np.array([38, 44, 92], np.uint8)  # dark blue: not yet filled (black is a real pixel value)
NEXT = np.array([255, 60, 60], np.uint8)
REPLAY_FRAMES = {"slow": 160, "normal": 60, "fast": 20}  # frames shown by Play, whatever the canvas size


# --------------------------------------------------------------------------- replay
def replay_frame(record: ProvenanceRecord, n: int, step: int) -> np.ndarray:
    """(H,W,3) uint8: sample n after ``step`` fills, unfilled pixels blue, the next pixel red."""
    img, known = record.canvas_at(n, step)
    rgb = to_rgb(img[None])[0].copy()
    rgb[~known] = UNFILLED
    if step < len(record.order):
        y, x = record.order[step]
        rgb[y, x] = NEXT
    return rgb


FRAME_PX = 320  # the replay picture's width, the same for every frame, during Play and after


def frame_px() -> int:
    """The replay frame's width: FRAME_PX, or 1.75x that in presentation mode."""
    return int(FRAME_PX * 1.75) if st.session_state.get("sb_present") else FRAME_PX


def _nudge(key: str, delta: int, total: int) -> None:
    st.session_state[key] = int(np.clip(st.session_state.get(key, 0) + delta, 0, total))


def seed_steps(record: ProvenanceRecord) -> int:
    """How many fill steps the seed patch takes (shell 0: copied whole from the reference)."""
    return int(np.count_nonzero(np.asarray(record.shell) == 0))


def shell_end(record: ProvenanceRecord, step: int) -> int:
    """The step at which the shell of the next pixel (``order[step]``) is complete.

    Step *t* shows *t* filled pixels; from ``step`` this is the smallest t > step where the
    next pixel's shell differs (or the end), so one click finishes the current shell.
    """
    shell = np.asarray(record.shell)
    total = len(shell)
    if step >= total:
        return total
    later = np.flatnonzero(shell[step:] != shell[step])
    return int(step + later[0]) if later.size else total


def _jump(key: str, to: int) -> None:
    st.session_state[key] = int(to)


def _to_shell_end(key: str, record: ProvenanceRecord) -> None:
    st.session_state[key] = shell_end(record, int(st.session_state.get(key, 0)))


def _pause(skey: str) -> None:
    """Pause: the click ends Play's loop (a rerun); the slider keeps the frame Play had reached."""
    playing = st.session_state.get(f"_{skey}_playing")
    if playing is not None:
        st.session_state[skey] = int(playing)


def _frame(pic, record: ProvenanceRecord, n: int, step: int, total: int) -> None:
    """One replay frame, always FRAME_PX wide (the picture never jumps in size during Play)."""
    px = frame_px()
    scale = max(1, -(-px // max(record.canvas_shape)))  # at least px, then shown at exactly px
    shell = int(record.shell[step - 1]) if step else 0
    pic.image(upscale(replay_frame(record, n, step), scale), width=px,
              caption=f"step {step}/{total} · shell {shell} · blue: not yet filled · red: next pixel")


@st.fragment
def replay(record: ProvenanceRecord, n: int, key: str) -> None:
    """The fill replayed from the record (no recompute): the picture first, then step, shell, play and pause.

    During Play a progress bar in the slider's place follows the frames; Pause (or any
    click) stops at the frame shown, and the slider then sits there.
    """
    total = len(record.order)
    skey = f"ana_step_{key}"
    pending = st.session_state.pop(f"_{skey}_pending", None)
    playing = st.session_state.pop(f"_{skey}_playing", None)
    if pending is not None:
        st.session_state[skey] = pending
    elif playing is not None:  # Play was interrupted by Pause or another click: stay on its frame
        st.session_state[skey] = int(playing)
    ss_default(skey, total)
    st.session_state[skey] = int(min(st.session_state[skey], total))
    seeds = seed_steps(record)
    left, right = st.columns([frame_px(), 300], gap="small")
    pic = left.empty()
    with right:
        row = st.container(horizontal=True)
        row.button("Start", icon=":material/skip_previous:", key=f"btn_first_{key}", help="back to the empty canvas",
                   on_click=_jump, args=(skey, 0))
        row.button("Back", icon=":material/chevron_left:", key=f"btn_back_{key}", help="one pixel back",
                   on_click=_nudge, args=(skey, -1, total))
        row.button("Step", icon=":material/chevron_right:", key=f"btn_step_{key}", help="one pixel forward",
                   on_click=_nudge, args=(skey, 1, total))
        row = st.container(horizontal=True)
        row.button(f"Skip seed ({seeds} px)", icon=":material/fast_forward:", key=f"btn_seed_{key}",
                   help="the seed patch is copied whole from the reference: jump past it in one click",
                   on_click=_jump, args=(skey, seeds), disabled=st.session_state[skey] >= seeds)
        row.button("Shell", icon=":material/keyboard_double_arrow_right:", key=f"btn_shell_{key}",
                   help="finish the current shell (the ring of pixels filled together)",
                   on_click=_to_shell_end, args=(skey, record))
        row = st.container(horizontal=True)
        play = row.button("Play", icon=":material/play_arrow:", key=f"btn_play_{key}", help="play to the end")
        row.button("Pause", icon=":material/pause:", key=f"btn_pause_{key}", on_click=_pause, args=(skey,),
                   help="stop Play at the frame shown")
        ss_default("ana_replay_speed", "normal")
        st.select_slider("speed", list(REPLAY_FRAMES), key="ana_replay_speed",
                         help="How many frames Play shows: slow shows every pixel on small canvases.")
        slot = st.empty()
    if play:
        start = 0 if st.session_state[skey] >= total else int(st.session_state[skey])
        stride = max(1, total // REPLAY_FRAMES[st.session_state["ana_replay_speed"]])
        steps = [*range(start, total, stride), total]
        for s in steps:
            st.session_state[f"_{skey}_playing"] = s  # where Pause (or any click) finds Play
            slot.progress(s / max(total, 1), text=f"Fill step {s}/{total} (playing)")
            _frame(pic, record, n, s, total)
            time.sleep(0.04)
        st.session_state.pop(f"_{skey}_playing", None)
        st.session_state[f"_{skey}_pending"] = total
        from streamlit.errors import StreamlitAPIException
        try:
            st.rerun(scope="fragment")
        except StreamlitAPIException:  # Play ran in a full run (not a fragment rerun): rerun the page
            st.rerun()
    step = slot.slider("Fill step", 0, total, key=skey,
                       help="The canvas after this many pixels (the seed pixels come first).")
    _frame(pic, record, n, step, total)
