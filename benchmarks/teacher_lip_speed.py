"""How fast the synthetic teacher moves the default head's skin; prints one JSON object.

The quiet hold (``facecast.face.quiet.RELAX_SPEED``) eases a lagging face to rest at a speed the lips themselves use.
This measures that speed on a synthetic corpus (``facecast synth``): each frame's largest skin vertex move
(cm per second, the quantity the hold limits) from the teacher's ARKit curves applied to the default character,
as percentiles over speech frames and as the peak of each pause onset (from 150 ms before a silence of at least
0.2 s starts to 100 ms into it).

    python benchmarks/teacher_lip_speed.py CORPUS_DIR [--shots 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facecast.characters import build_default_character
from facecast.synth.corpus import load_manifest
from facecast.synth.phonemes import SILENCE

PAUSE_MIN_S = 0.2
ONSET_BEFORE_S = 0.15
ONSET_AFTER_S = 0.1


def vertex_speeds(arkit: np.ndarray, deltas: np.ndarray, fps: float) -> np.ndarray:
    """Largest skin vertex speed between consecutive frames [N-1] (model units per second)."""
    step = np.einsum("nk,kvc->nvc", np.diff(arkit, axis=0), deltas)
    return np.sqrt((step * step).sum(-1)).max(-1) * fps


def percentiles(values: list[float], points: tuple[int, ...]) -> dict[str, float]:
    """``{"50": median, ...}`` rounded to 0.01; empty for no values."""
    if not values:
        return {}
    return {str(p): round(float(v), 2) for p, v in zip(points, np.percentile(values, points), strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a facecast synth output folder (with corpus.json)")
    parser.add_argument("--shots", type=int, default=200, help="at most this many shots")
    args = parser.parse_args()
    manifest = load_manifest(args.corpus / "corpus.json")
    fps = float(manifest["fps"])
    deltas = np.asarray(build_default_character().arkit_deltas["skin"], np.float32)
    speech, onsets = [], []
    for shot in manifest["shots"][: args.shots]:
        speed = vertex_speeds(shot["arkit"], deltas, fps)
        times = np.arange(len(speed)) / fps
        in_speech = np.zeros(len(speed), bool)
        for phone, start, end in shot["phones"]:
            if phone != SILENCE:
                in_speech |= (times >= start) & (times < end)
            elif end - start >= PAUSE_MIN_S and start > ONSET_BEFORE_S:
                near = (times >= start - ONSET_BEFORE_S) & (times < start + ONSET_AFTER_S)
                if near.any():
                    onsets.append(float(speed[near].max()))
        speech.extend(speed[in_speech].tolist())
    if not speech:
        raise SystemExit(f"{args.corpus}: no speech frames")
    print(
        json.dumps(
            {
                "corpus": str(args.corpus),
                "shots": min(args.shots, len(manifest["shots"])),
                "units": "largest skin vertex speed, model units (cm) per second",
                "speech_frames": len(speech),
                "speech_percentiles": percentiles(speech, (50, 75, 90, 95, 99)),
                "pause_onsets": len(onsets),
                "pause_onset_peak_percentiles": percentiles(onsets, (25, 50, 75)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
