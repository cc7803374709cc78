"""Stream animation to Unreal Engine's Live Link in the UDP format of the Live Link Face iOS app.

One datagram per frame, in network byte order (big-endian):

====================  ======================================================================
uint8                 packet version (6)
int32 + bytes         device id: byte length, then UTF-8 (the app sends a 36-character UUID)
int32 + bytes         subject name: byte length, then UTF-8
int32, float32        frame time: frame number, sub-frame (0 <= sub-frame < 1)
int32, int32          frame rate: numerator, denominator
uint8                 blendshape count (61)
61 x float32          the 52 ARKit weights in Unreal's ``EARFaceBlendShape`` order, then head yaw, pitch, roll,
                      left eye yaw, pitch, roll, right eye yaw, pitch, roll
====================  ======================================================================

The values follow facecast's Live Link Face CSV (:mod:`facecast.export.csv`): the head is static (0), the eye
angles are the Audio2Face eye rotations in radians (pitch = x, positive looks down; yaw = -y, negative looks to
the character's left) and the ``eyeLook*`` weights are raised to what those rotations imply
(:func:`facecast.export.csv.live_link_weights`), so a rig driven by the 52 curves alone still moves its eyes.
Unreal's Live Link Face source listens on UDP port 11111 by default.
"""

from __future__ import annotations

import math
import socket
import struct
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import numpy as np

from facecast.animation import Animation
from facecast.export.csv import eye_rotations, live_link_weights
from facecast.timing import fps_fraction

PACKET_VERSION = 6
DEFAULT_PORT = 11111

UNREAL_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose",
    "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight",
    "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
"""The 61 values of a packet, in Unreal's ``EARFaceBlendShape`` order."""

_FRAME_TOLERANCE = 1e-2
"""Frame times within this many frames below a whole frame count as that frame (times are sample-aligned)."""


def _arkit_columns() -> np.ndarray:
    """Column of each of the first 52 Unreal names in ``arkit_matrix`` (ARKIT_NAMES order)."""
    from facecast.constants import ARKIT_NAMES

    camel = [name[:1].lower() + name[1:] for name in UNREAL_BLENDSHAPES[:52]]
    missing = [name for name in camel if name not in ARKIT_NAMES]
    if missing:
        raise RuntimeError(f"Unreal blendshapes without an ARKit name: {missing}")
    return np.array([ARKIT_NAMES.index(name) for name in camel], np.int64)


_COLUMNS = _arkit_columns()


def live_link_values(anim: Animation) -> np.ndarray:
    """[N, 61] float32 packet values of every frame (see the module docstring for the order and units)."""
    values = np.zeros((len(anim), len(UNREAL_BLENDSHAPES)), np.float32)
    values[:, :52] = live_link_weights(anim)[:, _COLUMNS]
    values[:, 55:61] = eye_rotations(anim)
    return values


def frame_time(seconds: float, fps: float) -> tuple[int, float]:
    """(frame number, sub-frame) of a time in seconds at ``fps``."""
    exact = seconds * float(fps_fraction(fps))
    frame = math.floor(exact + _FRAME_TOLERANCE)
    return frame, max(exact - frame, 0.0)


def encode_packet(device_id: str, subject: str, frame: int, sub_frame: float, fps: float, values: np.ndarray) -> bytes:
    """One Live Link Face datagram (see the module docstring)."""
    values = np.asarray(values, np.float32).reshape(-1)
    if len(values) != len(UNREAL_BLENDSHAPES):
        raise ValueError(f"a Live Link Face packet holds {len(UNREAL_BLENDSHAPES)} values, got {len(values)}")
    if not np.isfinite(values).all():
        raise ValueError("Live Link values must be finite")
    rate = fps_fraction(fps)
    device, name = device_id.encode("utf-8"), subject.encode("utf-8")
    return b"".join(
        (
            struct.pack(">Bi", PACKET_VERSION, len(device)),
            device,
            struct.pack(">i", len(name)),
            name,
            struct.pack(">ifiiB", frame, sub_frame, rate.numerator, rate.denominator, len(values)),
            values.astype(">f4").tobytes(),
        )
    )


def wall_clock_frame(fps: float, now: datetime | None = None) -> int:
    """Frames since local midnight at ``fps`` (the timecode the iOS app stamps its frames with)."""
    now = now or datetime.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return int((now - midnight).total_seconds() * float(fps_fraction(fps)))


class LiveLinkSender:
    """Sends animation frames to a Live Link Face source (Unreal Engine) over UDP.

    >>> with LiveLinkSender("127.0.0.1", 11111, "facecast") as sender:
    ...     sender.send(model.animate("speech.wav"))  # doctest: +SKIP
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, subject: str = "facecast", device_id: str | None = None
    ) -> None:
        if not subject:
            raise ValueError("the Live Link subject name must not be empty")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        family, _, _, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        self.address = address
        self.subject = subject
        self.device_id = device_id or str(uuid.uuid4())
        self._socket = socket.socket(family, socket.SOCK_DGRAM)

    def send_frame(self, values: np.ndarray, frame: int, sub_frame: float = 0.0, fps: float = 30.0) -> None:
        """Send one frame of 61 values (:data:`UNREAL_BLENDSHAPES` order)."""
        self._socket.sendto(encode_packet(self.device_id, self.subject, frame, sub_frame, fps, values), self.address)

    def send(
        self,
        anim: Animation,
        realtime: bool = True,
        start_frame: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Send every frame of ``anim``; returns the number of packets sent.

        ``realtime`` paces the packets by the frame times (else they go out as fast as possible).
        ``start_frame`` offsets the frame numbers (default: the wall-clock timecode when sending starts, as the
        iOS app does; 0 gives the animation's own frame numbers).
        """
        values = live_link_values(anim)
        times = np.asarray(anim.times, np.float64)
        offset = wall_clock_frame(anim.fps) if start_frame is None else int(start_frame)
        started = time.perf_counter()
        for i in range(len(anim)):
            if realtime:
                wait = started + (times[i] - times[0]) - time.perf_counter()
                if wait > 0:
                    sleep(wait)
            frame, sub = frame_time(times[i], anim.fps)
            self.send_frame(values[i], offset + frame, sub, anim.fps)
        return len(anim)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> LiveLinkSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
