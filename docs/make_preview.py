"""Make docs/preview.png: the built-in head on an open vowel ("ah") and on a closure ("m"), front and
three-quarter views, drawn by the OpenGL preview renderer.

    python docs/make_preview.py [--size 320] [--out docs/preview.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecast.characters import apply_weights, build_default_character
from facecast.characters.render import make_renderer, save_png
from facecast.constants import ARKIT_NAMES

POSES = {
    "open vowel": {"jawOpen": 0.5, "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25, "mouthUpperUpLeft": 0.1,
                   "mouthUpperUpRight": 0.1},
    "closure": {"jawOpen": 0.06, "mouthClose": 0.06, "mouthPressLeft": 0.35, "mouthPressRight": 0.35,
                "mouthRollLower": 0.15},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "preview.png"))
    args = parser.parse_args()
    char = build_default_character()
    renderer = make_renderer(char, args.size, "both", engine="gl")
    rows = []
    for pose in POSES.values():
        w = np.zeros((1, len(ARKIT_NAMES)), np.float32)
        for name, value in pose.items():
            w[0, ARKIT_NAMES.index(name)] = value
        rows.append(renderer.render(renderer.stack(apply_weights(char, w), 0)))
    save_png(args.out, np.concatenate(rows, axis=0))
    print(args.out)


if __name__ == "__main__":
    main()
