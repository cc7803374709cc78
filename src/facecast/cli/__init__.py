"""The ``facecast`` command line: thin wrappers over the library.

Each command lives in its own module under ``facecast.cli``; :data:`COMMANDS` names it and its one-line help, so
``facecast --help`` lists every command without importing any, and ``facecast animate ...`` imports only
:mod:`facecast.cli.animate`. A command whose optional dependency is missing exits with code 2 and one line naming
the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)

COMMANDS: dict[str, tuple[str, str]] = {
    "animate": ("animate", "animate audio files with a model pack"),
    "batch": ("batch", "animate a folder or manifest of clips, resumably (locally or on Ray)"),
    "info": ("info", "summarise a model pack"),
    "serve": ("serve", "serve ACE Audio2Face-3D gRPC (A2FControllerService) on a model"),
    "retarget": ("retarget", "carry an animation's ARKit weights onto your own glTF/GLB head"),
    "plot": ("plot", "plot the waveform and blendshape curves of a clip as a PNG"),
    "livelink": ("livelink", "stream a clip's animation to Unreal Engine (Live Link Face, UDP)"),
    "bench": ("bench", "measure throughput and latency here; prints JSON"),
    "evaluate-lipsync": ("evaluate", "lip-sync metrics on recorded and held-out TTS speech, facecast beside peers"),
    "compare-lipsync": ("evaluate", "two evaluate-lipsync JSON reports side by side, in standard errors"),
    "synth": ("synth", "build a synthetic training corpus (TTS speech + procedural face) in NVIDIA's dataset layout"),
    "preprocess": ("train", "check a training dataset and build its PCA training cache"),
    "train": ("train", "train a regression network (run under torchrun for several GPUs)"),
    "eval": ("train", "evaluate a checkpoint: R², vertex, lip and closure errors"),
    "deploy": ("train", "write a checkpoint as the official model file set"),
    "calibrate": ("train", "per-pose output gains that give a trained pack back its teacher's range"),
    "toy-dataset": ("train", "write a tiny synthetic dataset (for trying the training framework)"),
}
"""Command name -> (module under ``facecast.cli`` that registers it, one-line help)."""

EXTRAS: dict[str, str] = {
    "grpc": "server",
    "nvidia_ace": "server",
    "nvidia_audio2face_3d": "server",
    "google": "server",
    "av": "preview",
    "pxr": "usd",
    "websockets": "web",
    "matplotlib": "plot",
    "torch": "train",
    "ray": "cluster",
    "piper": "synth",
    "pocketsphinx": "eval",
    "librosa": "eval",
    "openfacefx": "eval",
    "pylipsync": "eval",
    "meshopt": "retarget",
}
"""Top-level module -> the facecast extra that installs it (for the one-line error when it is missing)."""


def version() -> str:
    """The installed facecast version."""
    from facecast import __version__

    return __version__


def _selected(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) that point to ``--help``; subcommands inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the module of the command named in ``argv`` is imported (all of them when ``argv`` is None)."""
    parser = _Parser(prog="facecast", description="Speech to 3D facial animation (Audio2Face-3D).")
    parser.add_argument("--version", action="version", version=f"facecast {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = _selected(argv) if argv is not None else None
    if argv is None:
        modules = {m for m, _ in COMMANDS.values()}
    else:
        modules = {COMMANDS[wanted][0]} if wanted in COMMANDS else set()
    registered: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if module in modules and module not in registered:
            registered.add(module)
            importlib.import_module(f"facecast.cli.{module}").register(sub)
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    return parser


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """``pip install "facecast[EXTRA]"`` for a missing optional dependency, or None when it is not one."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    return f'pip install "facecast[{extra}]"' if extra else None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit with code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
    except ModuleNotFoundError as exc:
        return _report_missing(exc)
    return run_command(parser.parse_args(argv))


def _report_missing(exc: ModuleNotFoundError) -> int:
    hint = missing_extra(exc)
    if hint is None:
        raise exc
    print(f"facecast: error: this needs the optional package {exc.name!r}: {hint}", file=sys.stderr)
    return 2


EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (SIGINT): 128 + 2."""
EXIT_TERMINATED = 143
"""Exit code after SIGTERM: 128 + 15."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that ``finally`` blocks remove temporary files."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`; the old handler comes back
    afterwards. A command that handles SIGTERM itself (``serve``) installs its own handler inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command (``args.func``); user errors and file-system errors (full, read-only, a file where a
    folder should be) print one line and give exit code 2, no traceback; Ctrl-C gives 130 and SIGTERM 143, after
    the command's temporary files are removed."""
    try:
        with sigterm_as_interrupt():
            return args.func(args)
    except ModuleNotFoundError as exc:
        return _report_missing(exc)
    except USER_ERRORS as exc:
        print(f"facecast: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from facecast.fileio import describe_os_error

        print(f"facecast: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print("facecast: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("facecast: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
