"""Write ``examples/hello.wav``: about 3 s of speech-like audio from facecast's formant synthesiser.

Usage: ``python examples/make_example.py [OUTPUT.wav]``
"""

from __future__ import annotations

import sys
from pathlib import Path

from facecast.audio import save_wav
from facecast.infer.formant import SR, synthesise


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path(__file__).resolve().parent / "hello.wav"
    audio = synthesise()
    save_wav(target, audio, SR)
    print(f"wrote {target} ({audio.size / SR:.2f} s, {target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
