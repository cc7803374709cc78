"""The parts of the facecast Blender add-on that need no Blender: ARKit name matching, reading facecast's JSON
(or a facecast server's stream), the keyframes for a scene's frames, eye and jaw rotations, the command line.

Blender's Python has no facecast installed; this module stands alone (standard library only) so the add-on zip
is self-contained and these functions are tested without Blender.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
TONGUE_NAMES = (
    "tongueTipUp", "tongueTipDown", "tongueTipLeft", "tongueTipRight", "tongueRollUp", "tongueRollDown",
    "tongueRollLeft", "tongueRollRight", "tongueUp", "tongueDown", "tongueLeft", "tongueRight", "tongueIn",
    "tongueStretch", "tongueWide", "tongueNarrow",
)  # fmt: skip
EMOTIONS = ("amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain",
            "sadness")  # fmt: skip
JAW_WORDS = {"jaw", "mandible"}
EYE_WORDS = {"eye", "eyes", "eyeball", "eyeballs"}
NOT_EYE_WORDS = {"lash", "lashes", "brow", "brows", "lid", "lids", "blink", "look", "squint", "wide", "socket",
                 "target", "aim", "mesh", "highlight", "tear"}  # fmt: skip
LEFT, RIGHT = {"l", "left", "lf", "lft"}, {"r", "right", "rt", "rgt"}

_CANONICAL = {n.lower(): n for n in (*ARKIT_NAMES, *TONGUE_NAMES)}
_PREFIX = re.compile(r"^(arkit|apple|blendshapes?|bs|morph|shape)(?=[^a-z]|$)[_\-\s]*", re.IGNORECASE)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(name: str) -> list[str]:
    """Lower-case words of a name, split at separators and case changes ("grp_eyeLeft" -> grp, eye, left)."""
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORDS.findall(part)]


def arkit_name(name: str) -> str | None:
    """Apple camelCase ARKit (or A2F tongue) name that a shape key's name spells (jawOpen, JawOpen, jaw_open,
    eyeBlink_L, blendShape1.eyeBlinkLeft, ARKit_mouthSmile_R ...), or None."""
    if not isinstance(name, str) or not name.strip():
        return None
    last = re.split(r"[.|:/\\]", name.strip())[-1]
    for candidate in (last, _PREFIX.sub("", last)):
        flat = re.sub(r"[^a-z0-9]", "", candidate.lower())
        if not flat:
            continue
        if flat in _CANONICAL:
            return _CANONICAL[flat]
        parts = words(candidate)
        sides = [i for i, w in enumerate(parts) if w in LEFT or w in RIGHT]
        if not sides:
            continue
        i = sides[-1]
        side = "left" if parts[i] in LEFT else "right"
        base = "".join(parts[:i] + parts[i + 1 :])
        if base + side in _CANONICAL:
            return _CANONICAL[base + side]
        if base in _CANONICAL and not base.endswith(("left", "right")):
            return _CANONICAL[base]
    return None


def match_shape_keys(key_names: list[str], curves: list[str]) -> dict[str, str]:
    """{shape key name: curve name} for the keys that spell one of ``curves`` (the Basis key never)."""
    wanted = set(curves)
    out = {}
    for key in key_names:
        canonical = arkit_name(key)
        if canonical in wanted:
            out[key] = canonical
    return out


# ----------------------------------------------------------------------------------------------------
# animations


@dataclass
class FaceAnimation:
    """What the add-on applies: per-frame curves, and the eye (degrees) and jaw (4x4) motion when known."""

    fps: float
    times: list[float]
    curves: dict[str, list[float]]
    eyes: list[list[float]] | None = None
    """[N][6]: right x, right y, 0, left x, left y, 0 degrees (+x looks down, +y to the character's left)"""
    jaw: list[list[float]] | None = None
    """[N][16] column-major 4x4 rigid jaw transforms (glTF axes: y up, the face looks down +z)"""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)


def read_facecast_json(path: str | Path) -> FaceAnimation:
    """A ``facecast.animation/1`` JSON file (``facecast animate --formats json``) as a FaceAnimation."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable facecast JSON ({exc})") from None
    kind = doc.get("format") if isinstance(doc, dict) else None
    if not str(kind).startswith("facecast.animation/"):
        raise ValueError(f"{path}: not a facecast animation (format {kind!r})")
    fps, times = float(doc["fps"]), [float(t) for t in doc["time"]]
    curves: dict[str, list[float]] = {}
    for part in ("skin", "tongue"):
        block = doc.get(part)
        if block:
            for k, name in enumerate(block["names"]):
                curves[arkit_name(name) or name] = [float(row[k]) for row in block["weights"]]
    if any(len(v) != len(times) for v in curves.values()):
        raise ValueError(f"{path}: curves and times differ in length")
    return FaceAnimation(fps, times, curves, doc.get("eyes"), doc.get("jaw"))


def scene_frames(anim: FaceAnimation, fps: float, start: int) -> list[float]:
    """The scene frame of every animation frame: ``start + t * fps``, snapped to the whole frame within 1/1000
    of one (JSON times carry 6 decimals)."""
    out = []
    for t in anim.times:
        frame = start + t * fps
        out.append(float(round(frame)) if abs(frame - round(frame)) < 1e-3 else frame)
    return out


def keyframes(anim: FaceAnimation, fps: float, start: int) -> tuple[list[int], dict[str, list[float]]]:
    """(scene frames, {curve: value at each}) at every whole scene frame the animation covers, the curves
    interpolated linearly where the scene's fps differs from the animation's."""
    if not anim.times:
        return [], {}
    at = scene_frames(anim, fps, start)
    first, last = math.ceil(at[0] - 1e-6), math.floor(at[-1] + 1e-6)
    frames = list(range(first, last + 1))
    out = {name: resample(at, values, frames) for name, values in anim.curves.items()}
    return frames, out


def resample(at: list[float], values: list[float], frames: list[int]) -> list[float]:
    """Linear interpolation of ``values`` (at increasing ``at``) at ``frames``."""
    out, j = [], 0
    for f in frames:
        while j + 1 < len(at) and at[j + 1] <= f + 1e-9:
            j += 1
        if j + 1 >= len(at) or abs(at[j] - f) < 1e-9:
            out.append(values[min(j, len(values) - 1)])
        else:
            w = (f - at[j]) / (at[j + 1] - at[j])
            out.append(values[j] * (1 - w) + values[j + 1] * w)
    return out


# ----------------------------------------------------------------------------------------------------
# rotations (quaternions w, x, y, z as Blender stores them)

GLTF_TO_BLENDER = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
"""glTF's y-up axes -> Blender's z-up axes (x stays, y becomes z, z becomes -y): as Blender's glTF importer."""


def matmul(a: list, b: list) -> list:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def transpose(a: list) -> list:
    return [list(r) for r in zip(*a, strict=True)]


def eye_matrix(x_deg: float, y_deg: float) -> list:
    """The eye rotation Ry(y) @ Rx(x) in glTF axes (facecast's convention: +x looks down, +y to the left)."""
    x, y = math.radians(x_deg), math.radians(y_deg)
    rx = [[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]]
    ry = [[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]]
    return matmul(ry, rx)


def jaw_matrix(column_major: list[float]) -> list:
    """The rotation part of a column-major 4x4 jaw transform."""
    return [[column_major[c * 4 + r] for c in range(3)] for r in range(3)]


def to_blender(rotation: list) -> list:
    """A rotation in glTF axes expressed in Blender's axes."""
    c = [list(r) for r in GLTF_TO_BLENDER]
    return matmul(matmul(c, rotation), transpose(c))


def local_rotation(rotation: list, rest: list) -> list:
    """The rotation of a bone or object whose rest orientation (in the rig's axes) is ``rest``, so that it turns
    by ``rotation`` (in the rig's axes) about its own origin: rest^T @ rotation @ rest."""
    return matmul(matmul(transpose(rest), rotation), rest)


def quaternion(m: list) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation matrix."""
    trace = m[0][0] + m[1][1] + m[2][2]
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        q = (0.25 * s, (m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s)
    elif m[0][0] > m[1][1] and m[0][0] > m[2][2]:
        s = math.sqrt(1.0 + m[0][0] - m[1][1] - m[2][2]) * 2
        q = ((m[2][1] - m[1][2]) / s, 0.25 * s, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s)
    elif m[1][1] > m[2][2]:
        s = math.sqrt(1.0 + m[1][1] - m[0][0] - m[2][2]) * 2
        q = ((m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, 0.25 * s, (m[1][2] + m[2][1]) / s)
    else:
        s = math.sqrt(1.0 + m[2][2] - m[0][0] - m[1][1]) * 2
        q = ((m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, 0.25 * s)
    return q if q[0] >= 0 else tuple(-v for v in q)


def eye_rotations(anim: FaceAnimation, side: str) -> list[list]:
    """Per frame, the eye's rotation in Blender axes (side "right" or "left")."""
    k = 0 if side == "right" else 3
    return [to_blender(eye_matrix(row[k], row[k + 1])) for row in anim.eyes or []]


def jaw_rotations(anim: FaceAnimation) -> list[list]:
    """Per frame, the jaw's rotation in Blender axes."""
    return [to_blender(jaw_matrix(row)) for row in anim.jaw or []]


def find_rig_parts(names_and_x: list[tuple[str, float]]) -> dict[str, str]:
    """{"jaw"/"eye_right"/"eye_left": name} among bones or objects (name, x of its head in the rig, +x is the
    character's left): a jaw by name; two eyes by name, the one at larger x the left eye."""
    out: dict[str, str] = {}
    jaws = [n for n, _ in names_and_x if JAW_WORDS & set(words(n)) and arkit_name(n) is None]
    if jaws:
        out["jaw"] = min(jaws, key=len)
    eyes = [(n, x) for n, x in names_and_x if EYE_WORDS & set(words(n)) and not NOT_EYE_WORDS & set(words(n))]
    if len(eyes) >= 2:
        eyes.sort(key=lambda e: e[1])
        if eyes[0][1] != eyes[-1][1]:
            out["eye_right"], out["eye_left"] = eyes[0][0], eyes[-1][0]
            return out
    for n, _ in eyes:
        side = "eye_left" if LEFT & set(words(n)) else "eye_right" if RIGHT & set(words(n)) else None
        if side and side not in out:
            out[side] = n
    return out


# ----------------------------------------------------------------------------------------------------
# running facecast


def parse_face_params(text: str) -> list[str]:
    """``"skin_strength=1.2, lower_face_strength=1"`` -> ["skin_strength=1.2", ...]; raises ValueError on junk."""
    out = []
    for item in re.split(r"[,;\s]+", text.strip()):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"face parameter {item!r} is not NAME=VALUE")
        float(value)
        out.append(f"{name}={value}")
    return out


def animate_command(executable: str, audio: str | Path, out_dir: str | Path, fps: float, model: str = "",
                    emotion: str = "", emotion_strength: float = 1.0, face_params: str = "",
                    blinks: bool = True) -> list[str]:  # fmt: skip
    """The ``facecast animate`` command line that writes ``<out_dir>/<audio stem>.json``."""
    cmd = [executable, "animate", str(audio), "-o", str(out_dir), "--formats", "json", "--fps", f"{fps:g}", "-q"]
    if model:
        cmd += ["-m", model]
    if emotion:
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}; choose from {', '.join(EMOTIONS)}")
        cmd += ["--emotion", f"{emotion}={emotion_strength:g}"]
    for item in parse_face_params(face_params):
        cmd += ["--face-param", item]
    if not blinks:
        cmd.append("--no-blinks")
    return cmd


def run_facecast(executable: str, audio: str | Path, fps: float, **options: object) -> FaceAnimation:
    """Run the installed ``facecast`` command on ``audio`` and read its JSON; raises RuntimeError with its
    message when it fails."""
    found = shutil.which(executable) or (executable if Path(executable).is_file() else None)
    if found is None:
        raise RuntimeError(f"facecast command {executable!r} not found: pip install facecast, or set its path in "
                           "the add-on preferences")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="facecast_blender_") as tmp:
        cmd = animate_command(found, audio, tmp, fps, **options)  # type: ignore[arg-type]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"facecast failed with exit code {done.returncode}")
        return read_facecast_json(Path(tmp) / f"{Path(audio).stem}.json")


def run_server(address: str, audio: str | Path, emotion: str = "", emotion_strength: float = 1.0,
               face_params: str = "") -> FaceAnimation:  # fmt: skip
    """Animate ``audio`` (a 16-bit PCM WAV) on a running ``facecast serve`` (NVIDIA ACE A2FControllerService
    over gRPC). Needs ``grpcio`` and ``nvidia-audio2face-3d`` in Blender's Python. Eyes and jaw are not in the
    stream (blendshape weights only)."""
    import wave

    try:
        import grpc
        from nvidia_ace import audio_pb2
        from nvidia_audio2face_3d import audio2face_pb2_grpc, messages_pb2
    except ImportError:
        raise RuntimeError("server mode needs grpcio and nvidia-audio2face-3d in Blender's Python "
                           "(python -m pip install grpcio==1.67.1 nvidia-audio2face-3d), or use the facecast "
                           "command") from None  # fmt: skip
    try:
        with wave.open(str(audio), "rb") as wav:
            width, rate, channels = wav.getsampwidth(), wav.getframerate(), wav.getnchannels()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        width = 0
        if not str(exc).startswith("unknown format"):
            raise RuntimeError(f"{audio}: not a readable WAV ({exc})") from None
    if width != 2:
        raise RuntimeError(f"{audio}: server mode sends 16-bit PCM WAV; convert it or use the facecast command")
    if channels != 1:
        import array

        samples = array.array("h", pcm)
        pcm = array.array("h", samples[::channels]).tobytes()
    params = {p.split("=")[0]: float(p.split("=")[1]) for p in parse_face_params(face_params)}
    header = messages_pb2.AudioWithEmotionStreamHeader(
        audio_header=audio_pb2.AudioHeader(
            audio_format=0, channel_count=1, samples_per_second=rate, bits_per_sample=16
        ),  # fmt: skip
        face_params=messages_pb2.FaceParameters(float_params=params),
    )

    def requests():
        yield messages_pb2.AudioWithEmotionStream(audio_stream_header=header)
        step = rate // 10 * 2
        for i in range(0, len(pcm), step):
            keys = []
            if i == 0 and emotion:
                keys = [messages_pb2.EmotionWithTimeCode(time_code=0.0, emotion={emotion: emotion_strength})]
            body = messages_pb2.AudioWithEmotion(audio_buffer=pcm[i : i + step], emotions=keys)
            yield messages_pb2.AudioWithEmotionStream(audio_with_emotion=body)
        yield messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())

    names: list[str] = []
    times: list[float] = []
    rows: list[list[float]] = []
    with grpc.insecure_channel(address) as channel:
        for answer in audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(requests()):
            part = answer.WhichOneof("stream_part")
            if part == "animation_data_stream_header":
                names = list(answer.animation_data_stream_header.skel_animation_header.blend_shapes)
            elif part == "animation_data":
                for frame in answer.animation_data.skel_animation.blend_shape_weights:
                    times.append(frame.time_code)
                    rows.append(list(frame.values))
            elif part == "status" and answer.status.code == 3:  # ERROR
                raise RuntimeError(f"the facecast server refused the clip: {answer.status.message}")
    if not rows:
        raise RuntimeError(f"the facecast server at {address} sent no animation")
    fps = round(1.0 / (times[1] - times[0])) if len(times) > 1 else 30.0
    curves = {arkit_name(n) or n: [row[k] for row in rows] for k, n in enumerate(names)}
    start = times[0]
    return FaceAnimation(float(fps), [round((t - start) * fps) / fps for t in times], curves)
