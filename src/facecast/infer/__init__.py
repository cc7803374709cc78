"""Audio -> NetworkOutput: backends, the engine, streaming, int8 and Audio2Emotion."""
