"""The espeak-ng helper process: ``python -m facecast.synth.espeak_helper`` (started by :mod:`.espeak`).

It initialises one engine, answers ``{"sample_rate": N}`` (or ``{"error": why}``), then for each request
``{"text", "voice", "settings", "seed"}`` forks a child that speaks and sends back the encoded answer. It runs
one thread only, so the fork is safe. Messages are length-prefixed frames on stdin / stdout; anything the
library prints goes to stderr. It exits when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys

from facecast.synth.espeak import EspeakUnavailable, engine, receive_frame, send_frame, synth_in_child


def main() -> int:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from the library must not reach the protocol pipe
    sys.stdout = sys.stderr
    try:
        eng = engine()
    except EspeakUnavailable as exc:
        send_frame(reply_fd, json.dumps({"error": str(exc)}).encode())
        return 1
    send_frame(reply_fd, json.dumps({"sample_rate": eng.sample_rate}).encode())
    while (request := receive_frame(0)) is not None:
        r = json.loads(request.decode())
        send_frame(reply_fd, synth_in_child(eng, r["text"], r["voice"], tuple(r["settings"]), int(r["seed"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
