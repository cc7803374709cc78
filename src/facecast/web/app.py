"""The viewer's HTTP endpoints, independent of the server library: a request path in, a response out.

=====================  ==================================================================================
``/``                  the page (``static/index.html``)
``/static/NAME``       the page's scripts and style sheet
``/info``              the emotion names, fps, look-ahead, whether the model has random weights
``/character.json``    the default character's layout (see :mod:`facecast.web.character_data`)
``/character.bin``     its buffers
``/files``             animation JSON and audio files in the configured folder
``/animation?file=F``  an animation: ``F`` is a ``facecast.animation/1`` JSON, or an audio file that the model
                       animates (``&emotion=joy:0.8,anger:0.2`` sets its emotion); the answer names the audio
``/audio?file=F``      the bytes of an audio file in the folder, for playback
=====================  ==================================================================================
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from facecast.animation import Animation
from facecast.characters.character import Character
from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.emotion import EmotionError
from facecast.export.json import animation_dict
from facecast.export.json_read import read_animation_json
from facecast.fileio import FileFormatError
from facecast.model import Model
from facecast.web.character_data import CharacterPayload, build_payload

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_LISTED_FILES = 2000
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass
class HttpResponse:
    """A complete response: status, content type and body."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: object, status: int = 200) -> HttpResponse:
        return cls(status, "application/json", json.dumps(value, separators=(",", ":")).encode())

    @classmethod
    def error(cls, status: int, message: str) -> HttpResponse:
        return cls.json({"error": message}, status)


class RequestError(Exception):
    """A bad request: turned into an error response with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_emotion(spec: str) -> dict[str, float]:
    """``joy:0.8,anger:0.2`` (``=`` works too) -> ``{"joy": 0.8, "anger": 0.2}``."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, value = item.replace("=", ":").partition(":")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise RequestError(400, f"emotion {item!r}: expected NAME:WEIGHT") from None
        if not sep:
            raise RequestError(400, f"emotion {item!r}: expected NAME:WEIGHT")
    return out


class ViewerApp:
    """State shared by every request and stream: the model, the character and the folder of files.

    Model calls are serialised by :attr:`model_lock` (requests and streams run on worker threads).
    """

    def __init__(
        self, model: Model, folder: str | Path | None = None, character: Character | None = None, fps: float = 30.0
    ) -> None:
        self.model = model
        self.folder = Path(folder).resolve() if folder is not None else None
        self.fps = float(fps)
        self.model_lock = threading.Lock()
        self._character = character
        self._payload: CharacterPayload | None = None
        self._payload_lock = threading.Lock()
        self._animated: dict[tuple[str, int, int, str], dict] = {}
        self._static = resources.files("facecast.web") / "static"

    # -- resources ------------------------------------------------------------------------------------

    def payload(self) -> CharacterPayload:
        """The character buffers, built on first use."""
        with self._payload_lock:
            if self._payload is None:
                if self._character is None:
                    from facecast.characters import build_default_character

                    self._character = build_default_character()
                self._payload = build_payload(self._character)
            return self._payload

    def resolve(self, name: str) -> Path:
        """A file in the configured folder by its relative name; anything outside it is refused."""
        if self.folder is None:
            raise RequestError(404, "no file folder is configured (start the viewer with a folder)")
        rel = PurePosixPath(name.replace("\\", "/"))
        if not name or rel.is_absolute() or ".." in rel.parts:
            raise RequestError(403, f"{name!r} is outside the viewer's folder")
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder):
            raise RequestError(403, f"{name!r} is outside the viewer's folder")
        if not path.is_file():
            raise RequestError(404, f"{name!r} not found")
        return path

    def list_files(self) -> list[dict[str, str]]:
        """Animation JSON and audio files under the folder (relative names, sorted)."""
        if self.folder is None:
            return []
        out = []
        for path in sorted(self.folder.rglob("*")):
            suffix = path.suffix.lower()
            if path.is_file() and (suffix == ".json" or suffix in AUDIO_SUFFIXES):
                out.append(
                    {
                        "name": path.relative_to(self.folder).as_posix(),
                        "kind": "animation" if suffix == ".json" else "audio",
                    }
                )
                if len(out) >= MAX_LISTED_FILES:
                    break
        return out

    def audio_for(self, path: Path) -> str | None:
        """The relative name of the audio file next to an animation (same stem), if any."""
        for suffix in AUDIO_SUFFIXES:
            candidate = path.with_suffix(suffix)
            if candidate.is_file():
                return candidate.relative_to(self.folder).as_posix()
        return None

    def animate(self, audio, emotion: Mapping[str, float] | None = None) -> Animation:
        """Animate a path or 16 kHz samples with the model (serialised)."""
        with self.model_lock:
            return self.model.animate(audio, fps=self.fps, emotion=dict(emotion) if emotion else None)

    def animation(self, name: str, emotion: dict[str, float]) -> dict:
        """The ``/animation`` document of a JSON or audio file in the folder."""
        path = self.resolve(name)
        suffix = path.suffix.lower()
        if suffix == ".json":
            doc = animation_dict(read_animation_json(path))
            doc["audio"] = self.audio_for(path)
            return doc
        if suffix not in AUDIO_SUFFIXES:
            raise RequestError(400, f"{name!r} is neither an animation JSON nor audio ({', '.join(AUDIO_SUFFIXES)})")
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, json.dumps(emotion, sort_keys=True))
        if key not in self._animated:
            doc = animation_dict(self.animate(path, emotion))
            doc["audio"] = path.relative_to(self.folder).as_posix()
            self._animated = {key: doc}  # keep only the latest clip
        return self._animated[key]

    def static(self, name: str) -> HttpResponse:
        suffix = PurePosixPath(name).suffix
        if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
            raise RequestError(404, f"no static file {name!r}")
        item = self._static / name
        if not item.is_file():
            raise RequestError(404, f"no static file {name!r}")
        return HttpResponse(200, _STATIC_TYPES[suffix], item.read_bytes(), {"Cache-Control": "no-cache"})

    def info(self) -> dict:
        """What the page needs to know about the model."""
        return {
            "emotion_names": list(EMOTION_NAMES),
            "fps": self.fps,
            "random_weights": self.model.random_weights,
            "lookahead": self.model.engine.lookahead_samples / SAMPLE_RATE,
            "folder": self.folder is not None,
        }

    # -- dispatch -------------------------------------------------------------------------------------

    def handle(self, target: str) -> HttpResponse:
        """Answer a GET request for ``target`` (path and query)."""
        url = urlsplit(target)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            return self._route(path, query)
        except RequestError as exc:
            return HttpResponse.error(exc.status, str(exc))
        except (FileFormatError, EmotionError, ValueError) as exc:
            return HttpResponse.error(400, str(exc))

    def _route(self, path: str, query: dict[str, str]) -> HttpResponse:
        if path in ("/", "/index.html"):
            return self.static("index.html")
        if path.startswith("/static/"):
            return self.static(path[len("/static/") :])
        if path == "/character.json":
            return HttpResponse.json(self.payload().meta)
        if path == "/character.bin":
            return HttpResponse(200, "application/octet-stream", self.payload().blob)
        if path == "/info":
            return HttpResponse.json(self.info())
        if path == "/files":
            return HttpResponse.json({"folder": self.folder is not None, "files": self.list_files()})
        if path == "/animation":
            emotion = parse_emotion(query.get("emotion", ""))
            return HttpResponse.json(self.animation(self._file_arg(query), emotion))
        if path == "/audio":
            audio = self.resolve(self._file_arg(query))
            if audio.suffix.lower() not in AUDIO_SUFFIXES:
                raise RequestError(400, f"{audio.name!r} is not an audio file")
            kind = mimetypes.guess_type(audio.name)[0] or "application/octet-stream"
            return HttpResponse(200, kind, audio.read_bytes())
        if path == "/favicon.ico":
            return HttpResponse(204, "image/x-icon", b"")
        raise RequestError(404, f"no such page {path!r}")

    @staticmethod
    def _file_arg(query: dict[str, str]) -> str:
        if not query.get("file"):
            raise RequestError(400, "missing ?file=NAME")
        return query["file"]
