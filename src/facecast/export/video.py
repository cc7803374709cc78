"""Animation as an MP4 preview (H.264 + AAC): the character rendered by
:mod:`facecast.characters.render`, with the clip's audio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facecast.animation import Animation
from facecast.constants import SAMPLE_RATE
from facecast.export.csv import arkit_matrix
from facecast.fileio import writing


def write_mp4(
    anim: Animation,
    path: str | Path,
    character: Any = None,
    size: int = 384,
    views: str = "both",
    background: str | tuple[float, float, float] = "dark",
    audio: str | os.PathLike | None = None,
    engine: str = "auto",
) -> Path:
    """Render ``anim`` on ``character`` (default: the built-in CC0 head) to an MP4; returns the path.

    ``size`` is each view's side in pixels, ``views`` front, three-quarter, profile, both (front and
    three-quarter) or all, ``background`` a colour (#rrggbb, r,g,b or a name). The sound is ``audio`` (a file,
    kept at its own sample rate) when given, else the animation's 16 kHz audio, else none. The ARKit weights pose
    the head, and their jaw shapes the jaw (:func:`facecast.export.gltf.character_jaw`). Needs PyAV.
    """
    if len(anim) == 0:
        raise ValueError("cannot render an empty animation")
    try:
        from facecast.characters.render import write_preview_mp4
    except ImportError as exc:
        raise RuntimeError(
            f"MP4 previews need facecast.characters.render, which could not be imported ({exc})"
        ) from None
    if character is None:
        from facecast.characters import build_default_character

        character = build_default_character()
    from facecast.export.gltf import character_jaw, tongue_matrix

    with writing(path):  # a full or read-only file system: one OutputError naming the file
        return write_preview_mp4(
            path,
            character,
            arkit_matrix(anim),
            tongue_weights=tongue_matrix(anim) if anim.tongue_weights is not None else None,
            jaw=character_jaw(character, anim),
            eyes=anim.eyes,
            audio=audio if audio is not None else anim.audio,
            sample_rate=SAMPLE_RATE,
            fps=anim.fps,
            size=size,
            views=views,
            background=background,
            engine=engine,
        )
