"""Quiet hold: in silences the face relaxes to the model's rest pose and stays still (a facecast extension).

A regression network keeps moving the lips a little in pauses (it hears breath, room noise and its own
look-ahead) and seldom settles at rest. The quiet hold gates the network's pose with the audio level, per stream
and causally within the model's look-ahead, so offline, streaming and served results agree:

* **Level** ``L`` of a frame: the RMS of the audio from 30 ms before to 60 ms after the frame's time (at most
  the model's look-ahead), in dB full scale (:func:`facecast.audio.frame_levels`).
* **References**, carried frame to frame: the noise floor ``F`` (the lowest level so far, exact zeros aside,
  rising 3 dB/s to follow a louder room) and the speech peak ``P`` (the highest level so far, falling 1 dB/s so
  that one shout does not silence the speech after it).
* A frame is **quiet** when ``L < -80 dBFS`` (digital silence); or ``L < P - 20 dB`` (well below the speech
  heard); or ``L < F + 10 dB`` and ``L < -40 dBFS`` (room noise before any speech, when ``P`` is no guide yet;
  louder audio might be speech and is left alone).
* **Hold**: from the second quiet frame in a row (a single quiet frame is a stop closure: the lips must still
  close) the pose eases (raised cosine) from where it is to the **rest pose** and stays there. The ease takes
  the distance (the largest skin vertex move) over ``RELAX_SPEED``, 10 cm/s: at least one frame, at most 0.1 s.
  A quiet frame whose pose is already within ``NEAR_REST`` of rest (no skin vertex 0.5 mm away: a step too small
  to see, and no closure, whose lips are pressed a millimetre or more past rest) starts the hold at once, at rest.
  The rest pose is the network's own output for silence with the frame's emotion input
  (:meth:`facecast.infer.engine.Engine.rest_result`), so a smile stays a smile; without one the pose simply stops.
  When a frame is no longer quiet the output crossfades back to the network's over ``release`` (67 ms).
* ``strength`` (the ``quiet_hold`` face parameter, 0 = off as in the SDK, 1 = full) mixes the held pose into
  the network's: ``out = live + strength * (held - live)``.

Every column of the network result is held except the eyes (the last 4): skin and tongue PCA coefficients and
jaw keypoints, so vertices, blendshape weights and the jaw transform stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SILENT_DBFS = -80.0
"""Below this level a frame is always quiet (digital silence: the last bits of 16-bit audio, dither). Speech
recorded quietly (peaks at -40 dBFS, weak consonants at -60 to -70) is above it and is judged against its own
peak and floor."""
NO_SIGNAL_DBFS = -140.0
"""Below this level there is no signal at all (exact zeros, or no audio around the frame): such frames do not set
the noise floor, so a clip that starts with zeros still learns its room noise."""
FLOOR_MARGIN_DB = 10.0
PEAK_MARGIN_DB = 20.0
QUIET_DBFS = -40.0
"""Before speech has been heard, audio near the floor and below this level is quiet."""
FLOOR_RISE_DB_S = 3.0
PEAK_FALL_DB_S = 1.0
RELAX_S = 0.1
HOLD_AFTER_FRAMES = 1
"""Quiet frames in a row that are still followed live (a stop closure); the hold starts on the next."""
RELEASE_S = 0.067
NEAR_REST = 0.05
"""The largest skin vertex move (model units: cm in NVIDIA's and facecast's packs) too small to see: a quiet frame
whose pose is that close to rest starts the hold at once, at rest."""
RELAX_SPEED = 10.0
"""How fast a hold eases to rest (model units per second: 10 cm/s of the largest skin vertex move; at least one
frame, at most ``RELAX_S``). The network lags the sound (its teacher is at rest when the sound stops), and the hold
starts only on the second quiet frame, so the ease catches up at the speed the lips themselves move: the teacher
closes into a pause with a peak vertex speed of 9 cm/s (median; upper quartile 12) and its speech frames move at 8
to 14 cm/s at the 75th to 90th percentile (``benchmarks/teacher_lip_speed.py`` on a synthetic corpus). A face 3 mm
from rest gets there in one frame at 30 fps, one farther away takes two or three."""
EYE_COLUMNS = 4


@dataclass
class QuietHoldState:
    """One stream's references and hold."""

    floor: float | None = None
    peak: float | None = None
    quiet_run: int = 0
    """Consecutive quiet frames so far."""
    age: int = -1
    """Frames since the hold started (-1: not holding)."""
    held: np.ndarray | None = None
    """The held pose of the last frame (a crossfade starts from it)."""
    start: np.ndarray | None = None
    """The pose the current hold eases from."""
    rest: np.ndarray | None = None
    """The pose the current hold eases to."""
    relax: float = 1.0
    """Frames the current hold's ease takes."""
    release_age: int = -1
    """Frames since the hold ended (-1: no crossfade running)."""
    last: np.ndarray | None = None
    """The last gated output (where a new hold starts during a crossfade)."""


def quiet_frames(levels: np.ndarray, state: QuietHoldState, fps: float) -> np.ndarray:
    """Which frames are quiet, updating the stream's floor and peak."""
    rise, fall = FLOOR_RISE_DB_S / fps, PEAK_FALL_DB_S / fps
    quiet = np.zeros(len(levels), bool)
    for i, level in enumerate(np.asarray(levels, np.float64)):
        if state.floor is None or state.floor < NO_SIGNAL_DBFS:
            state.floor = level
        elif level >= NO_SIGNAL_DBFS:
            state.floor = min(level, state.floor + rise)
        state.peak = level if state.peak is None else max(level, state.peak - fall)
        quiet[i] = (
            level < SILENT_DBFS
            or level < state.peak - PEAK_MARGIN_DB
            or (level < state.floor + FLOOR_MARGIN_DB and level < QUIET_DBFS)
        )
    return quiet


def hold_quiet(
    result: np.ndarray,
    levels: np.ndarray,
    state: QuietHoldState,
    fps: float,
    strength: float = 1.0,
    rest: Callable[[int], np.ndarray] | None = None,
    distance: Callable[[np.ndarray], float] | None = None,
) -> np.ndarray:
    """The network result [N, D] held at rest through quiet frames (see the module docstring).

    ``rest(i)`` gives the rest pose [D] for frame ``i`` of this call; it is asked at a hold's start (and, with
    ``distance``, on the first quiet frame of a run, to see whether the face is already at rest).
    ``distance(delta)`` measures a change of the held columns (the largest skin vertex move); with it, a quiet
    frame within ``NEAR_REST`` of rest starts the hold at once, at rest, and a hold eases no faster than
    ``RELAX_SPEED``."""
    out = np.array(result, np.float32, copy=True)
    quiet = quiet_frames(levels, state, fps)  # the references follow the audio even when nothing is held
    if strength <= 0:
        return out
    cols = slice(0, out.shape[1] - EYE_COLUMNS)
    relax = max(RELAX_S * fps, 1.0)
    release = max(RELEASE_S * fps, 1.0)
    for i in range(len(out)):
        live = out[i, cols].astype(np.float64)
        state.quiet_run = state.quiet_run + 1 if quiet[i] else 0
        base = live if state.last is None else state.last
        settled = None
        if 0 < state.quiet_run <= HOLD_AFTER_FRAMES and state.age < 0 and rest is not None and distance is not None:
            target = np.asarray(rest(i), np.float64)[cols]
            if distance(base - target) <= NEAR_REST:
                settled = target  # already (all but) at rest: hold it now, a step too small to see
        if state.quiet_run > HOLD_AFTER_FRAMES or settled is not None:
            state.age = state.age + 1 if state.age >= 0 else 0
            state.release_age = -1
            if state.age == 0:
                state.start = base if settled is None else settled
                if settled is not None:
                    state.rest = settled
                else:
                    state.rest = base if rest is None else np.asarray(rest(i), np.float64)[cols]
                state.relax = relax
                if distance is not None and RELAX_SPEED > 0:  # as fast as a lip may relax, at most RELAX_S long
                    state.relax = min(max(distance(state.start - state.rest) * fps / RELAX_SPEED, 1.0), relax)
            ease = 0.5 - 0.5 * np.cos(np.pi * min(1.0, (state.age + 1) / state.relax))
            state.held = state.start + ease * (state.rest - state.start)
            gated = state.held
        elif state.held is not None:
            state.age = -1
            state.release_age += 1
            fade = 1.0 - (state.release_age + 1) / (release + 1)
            if fade <= 0:
                state.held, state.last, state.release_age = None, None, -1
                continue
            gated = live + fade * (state.held - live)
        else:
            continue
        state.last = gated
        out[i, cols] = live + strength * (gated - live)
    return out
