"""The error every TTS backend raises when its program, library or voice is missing."""


class BackendUnavailable(RuntimeError):
    """A TTS backend's program, library or voice is not installed; the message says how to install it."""
