"""Lip-sync of recorded speech played back quieter or louder; prints one JSON object.

Each recorded clip (``pocketsphinx-testdata``'s cards and librivox, or the WAV files given) is scaled so that the
loudest clip peaks at each level, animated with the default model (or ``--pack``), and its lip gap (the default
head's, in mm) compared with the clip's own at full level: mean and lowest correlation over clips, and the ratio of
the gap's standard deviation (1 = the mouth moves as much). With the quiet hold on and off, so that what the hold
does to quiet audio shows apart from the network's own response to level.

    python benchmarks/level_robustness.py [--pack DIR] [--peaks -20 -30 -40 -50] [WAV ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facecast.audio import load_audio
from facecast.characters import build_default_character
from facecast.evaluation.corpus import POCKETSPHINX_TESTDATA
from facecast.evaluation.metrics import lip_geometry
from facecast.model import load_model


def default_clips() -> list[Path]:
    return sorted([*POCKETSPHINX_TESTDATA.glob("cards/*.wav"), *POCKETSPHINX_TESTDATA.glob("librivox/*.wav")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, help="WAV files (default: pocketsphinx-testdata's)")
    parser.add_argument("--pack", default=None, help="model folder (default: the embedded default model)")
    parser.add_argument("--peaks", nargs="+", type=float, default=[-20.0, -30.0, -40.0, -50.0], help="dBFS")
    args = parser.parse_args()
    paths = args.clips or default_clips()
    if not paths:
        raise SystemExit("no clips: install pocketsphinx-testdata (apt) or give WAV files")
    clips = [load_audio(p) for p in paths]
    loudest = max(float(np.abs(c).max()) for c in clips)
    geometry = lip_geometry(build_default_character())
    model = load_model(args.pack)
    report: dict = {"clips": len(clips), "loudest_peak_dbfs": round(20 * np.log10(loudest), 2), "levels": {}}
    for hold in (1.0, 0.0):
        params = {"quiet_hold": hold}

        def gap(audio: np.ndarray, params: dict = params) -> np.ndarray:
            return geometry.gap(model.animate(audio, blinks=False, face_params=params).skin_weights) * 10.0

        reference = [gap(c) for c in clips]
        for peak in args.peaks:
            scale = 10 ** (peak / 20) / loudest
            gaps = [gap(np.clip(c * scale, -1.0, 1.0).astype(np.float32)) for c in clips]
            corr = [float(np.corrcoef(r, g)[0, 1]) for r, g in zip(reference, gaps, strict=True)]
            ratio = [float(g.std() / r.std()) for r, g in zip(reference, gaps, strict=True)]
            row = report["levels"].setdefault(f"{peak:g}", {})
            row["hold" if hold else "no_hold"] = {
                "gap_correlation_mean": round(float(np.mean(corr)), 3),
                "gap_correlation_min": round(float(np.min(corr)), 3),
                "gap_sd_ratio": round(float(np.mean(ratio)), 3),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
