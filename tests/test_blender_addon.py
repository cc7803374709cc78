"""The Blender add-on in Blender itself, headless (PyPI ``bpy``, Blender as a Python module; ``make test-blender``
installs it): import a facecast GLB and a retargeted head with Blender's glTF importer, press Animate on a
facecast JSON, and read the keys back: they exist and equal the JSON; eye objects turn, the sound strip, fps and
frame range are set. Skipped, saying why, where bpy does not install (it needs CPython 3.11 on x86-64 Linux,
Windows or macOS)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from exporthelpers import make_animation, make_character, skip_without_anny
from gltfheads import textured_parts, write_glb_head

from facecast.export.gltf import write_gltf
from facecast.export.json import write_json
from facecast.export.retarget import retarget

bpy = pytest.importorskip("bpy", reason="Blender as a Python module is not installed (make test-blender: pip "
                          "install bpy==4.2.*, a 350 MB wheel for CPython 3.11)")  # fmt: skip

ADDONS = Path(__file__).resolve().parents[1] / "integrations" / "blender"
N = 16


@pytest.fixture(scope="module")
def addon():
    sys.path.insert(0, str(ADDONS))
    import facecast_blender
    from facecast_blender import apply, core

    facecast_blender.register()
    yield facecast_blender, apply, core
    facecast_blender.unregister()
    sys.path.remove(str(ADDONS))


def _import(path: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}


def _fcurve_values(id_block, path: str, index: int = 0) -> tuple[list[float], list[float]]:
    action = id_block.animation_data.action
    curves = action.fcurves if hasattr(action, "fcurves") else action.layers[0].strips[0].channelbags[0].fcurves
    fcurve = curves.find(path, index=index)
    assert fcurve is not None, path
    co = [tuple(p.co) for p in fcurve.keyframe_points]
    return [c[0] for c in co], [c[1] for c in co]


def _check_keys(report, core, face, start: int) -> int:
    checked = 0
    for mesh_name, matched in report.shape_keys.items():
        keys = bpy.data.objects[mesh_name].data.shape_keys
        for key, curve in matched.items():
            frames, values = _fcurve_values(keys, f'key_blocks["{key}"].value')
            assert frames == [float(start + k) for k in range(len(face))]
            np.testing.assert_allclose(values, face.curves[curve], atol=1e-6, err_msg=f"{mesh_name}:{key}")
            checked += 1
    return checked


@pytest.mark.parametrize("character", ["tiny", "default"])
def test_animate_a_facecast_glb(addon, tmp_path, character):
    facecast_blender, apply, core = addon
    if character == "default":
        skip_without_anny()
    anim = make_animation(N, fps=30.0, seed=31, audio=True)
    head = make_character(seed=2) if character == "tiny" else None  # None: the built-in default head
    glb = write_gltf(anim, tmp_path / "head.glb", character=head)
    json_path = write_json(anim, tmp_path / "clip.json")
    import soundfile as sf

    sf.write(tmp_path / "clip.wav", anim.audio, 16000)
    _import(glb)
    scene = bpy.context.scene
    scene.render.fps = 24
    settings = scene.facecast
    settings.source, settings.json_path, settings.audio = "JSON", str(json_path), str(tmp_path / "clip.wav")
    settings.target, settings.start = bpy.data.objects["skin"], 10
    face = facecast_blender.load_animation(settings)
    report = apply.apply_animation(scene, settings.target, face, settings.audio, start=10)
    assert (scene.render.fps / scene.render.fps_base, scene.frame_start, scene.frame_end) == (30.0, 10, 10 + N - 1)
    assert set(report.shape_keys) == {"skin", "upper_teeth", "lower_teeth", "tongue"}
    assert len(report.shape_keys["tongue"]) == 52 + 16 and len(report.shape_keys["skin"]) == 52
    assert _check_keys(report, core, face, 10) == 3 * 52 + 68
    editor = scene.sequence_editor
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    if bpy.app.build_options.audaspace:  # the bpy module is built without audio: then a note says so
        assert [s.type for s in strips] == ["SOUND"] and strips[0].frame_start == 10
    else:
        assert len(strips) == 0 and any("sound strip not added" in n for n in report.notes)
    # the eyes turn as the animation says, the jaw stays (its meshes have jawOpen keys)
    assert set(report.rig) == {"eye_right", "eye_left"} and any("jaw" in n for n in report.notes)
    eye = bpy.data.objects["eye_left"]
    scene.frame_set(10)
    rest = np.array(eye.matrix_world.to_3x3())
    for k in (0, 7):
        scene.frame_set(10 + k)
        turned = np.array(eye.matrix_world.to_3x3())
        expected = np.array(core.to_blender(core.eye_matrix(*face.eyes[k][3:5]))) @ np.array(
            core.to_blender(core.eye_matrix(*face.eyes[0][3:5]))).T @ rest  # fmt: skip
        np.testing.assert_allclose(turned, expected, atol=1e-5)


def test_animate_a_retargeted_head_through_the_operator(addon, tmp_path):
    facecast_blender, apply, core = addon
    anim = make_animation(N, fps=25.0, seed=32)
    head = write_glb_head(tmp_path / "head.glb", *textured_parts())
    retarget(anim, head, tmp_path / "retargeted.glb")
    json_path = write_json(anim, tmp_path / "clip.json")
    _import(tmp_path / "retargeted.glb")
    settings = bpy.context.scene.facecast
    mesh = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
    settings.source, settings.json_path, settings.target, settings.add_sound = "JSON", str(json_path), mesh, False
    assert bpy.ops.facecast.animate() == {"FINISHED"}
    keys = mesh.data.shape_keys
    names = [k.name for k in keys.key_blocks]
    assert {"jawOpen", "eyeBlink_L", "mouthSmile_R"} <= set(names)
    face = core.read_facecast_json(json_path)
    for key, curve in (("jawOpen", "jawOpen"), ("eyeBlink_L", "eyeBlinkLeft"), ("mouthSmile_R", "mouthSmileRight")):
        frames, values = _fcurve_values(keys, f'key_blocks["{key}"].value')
        assert frames == [float(1 + k) for k in range(N)]
        np.testing.assert_allclose(values, face.curves[curve], atol=1e-6)
    assert bpy.context.scene.render.fps == 25 and bpy.context.scene.frame_end == N
    # the imported file still has its texture: retargeting kept it
    assert any(img.size[0] == 4 for img in bpy.data.images)


def test_extension_zip_passes_blenders_validator(tmp_path):
    import subprocess

    sys.path.insert(0, str(ADDONS))
    try:
        from build_zip import build
    finally:
        sys.path.remove(str(ADDONS))
    archive = build(tmp_path)
    scripts = Path(bpy.utils.resource_path("LOCAL")) / "scripts"
    tool = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        pytest.skip(f"this bpy has no extension tool at {tool}")
    done = subprocess.run([sys.executable, str(tool), "validate", str(archive)], capture_output=True, text=True)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr
    import zipfile

    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and not any("pycache" in n for n in names)
