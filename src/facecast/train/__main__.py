"""``python -m facecast.train``: the training commands standalone (what torchrun launches)."""

import sys

from .cli import main

sys.exit(main())
