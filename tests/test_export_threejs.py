"""The GLB in three.js (npm ``three``, run with node): GLTFLoader parses it, an AnimationMixer plays the
"facecast" clip, and the skin's jawOpen influence equals the animation's weight at frame times."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from exporthelpers import make_animation, make_character
from gltfvalidator import THREE_VERSION, npm_prefix

from facecast.export.gltf import write_gltf

SCRIPT = """
import fs from "fs";
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
const [file, fps, frames] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const data = fs.readFileSync(file);
new GLTFLoader().parse(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), "", (gltf) => {
  const clip = gltf.animations.find((a) => a.name === "facecast");
  const mixer = new THREE.AnimationMixer(gltf.scene);
  mixer.clipAction(clip).play();
  let skin; gltf.scene.traverse((o) => { if (o.isMesh && o.name === "skin") skin = o; });
  const jaw = [];
  const index = skin.morphTargetDictionary.jawOpen;
  for (let k = 0; k < frames; k++) { mixer.setTime(k / fps); jaw.push(skin.morphTargetInfluences[index]); }
  const materials = new Set(); gltf.scene.traverse((o) => { if (o.isMesh) materials.add(o.material.name); });
  console.log(JSON.stringify({ duration: clip.duration, jaw, materials: [...materials].sort() }));
}, (e) => { console.error(String(e)); process.exit(3); });
"""


def test_threejs_plays_the_glb(tmp_path):
    prefix = npm_prefix("three", THREE_VERSION)
    anim = make_animation(12, fps=30.0, seed=41)
    glb = write_gltf(anim, tmp_path / "head.glb", character=make_character(seed=4))
    script = prefix / "facecast_threejs_check.mjs"  # beside node_modules, so the ES module import resolves
    script.write_text(SCRIPT)
    done = subprocess.run(["node", str(script), str(glb), "30", str(len(anim))], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert abs(result["duration"] - (len(anim) - 1) / 30) < 1e-6
    np.testing.assert_allclose(result["jaw"], anim.weights("jawOpen"), atol=1e-6)
    assert {"sclera", "pupil"} <= set(result["materials"])
