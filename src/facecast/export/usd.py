"""Animation as USD (``pip install usd-core``): a UsdSkel rig with blend shapes, or a per-frame point cache.

Skeletal layout (the default)::

    /facecast_head                 SkelRoot (default prim), skel:skeleton -> Skeleton
      Skeleton                     joints root, root/jaw, root/eye_right, root/eye_left; skel:animationSource
        Animation                  SkelAnimation: blendShapes (52 ARKit + 16 tongue, Apple camelCase),
                                   blendShapeWeights, translations, rotations time-sampled per frame; scales
      Geom/<part>                  Mesh (points, normals), rigidly bound to one joint (constant jointIndices)
        <shape>                    BlendShape: sparse offsets + pointIndices, only the shapes that move the part

The jaw joint rests at an estimated hinge and carries the lower teeth and tongue; its animated translation and
rotation reproduce the rigid jaw transform ``M @ [x, y, z, 1]`` exactly: the motion the frame's ARKit jaw shapes
give the lower teeth (:func:`facecast.export.gltf.character_jaw`), so teeth and tongue open with the lips, and
those two parts get no blend shapes of the jaw's own shapes (``JAW_SHAPES``). The eye joints rest at the eye pivots and
rotate x then y (degrees from the animation, plus the ``eyeLook*`` rotations of characters that pose their
eyeballs by rotation; those eye meshes get no blend shapes). Skin and upper teeth hang on ``root``, which never
moves. UsdSkel applies blend shapes before skinning, so evaluating the file reproduces
:func:`facecast.characters.apply_weights`. Units are the character's centimetres (``metersPerUnit`` 0.01), y up;
``timeCodesPerSecond`` = ``framesPerSecond`` = the animation's fps and frame i sits at time code i (``t_i * fps``,
snapped to the whole frame; unsnapped only for irregular frame times).

``geometry=True`` writes a point cache instead: plain meshes under ``/facecast_head`` whose ``points`` are
time-sampled every frame (the posed geometry), for tools without UsdSkel.

Looks: every mesh has ``primvars:displayColor`` and is bound to a ``UsdPreviewSurface`` material of the same
colour under ``/facecast_head/Materials``; eyeballs are split by ``GeomSubset`` (family ``materialBind``) into
sclera, iris and pupil with their own materials and per-face display colours, so the gaze shows.

Audio: ``/facecast_head/Audio`` is a ``UsdMediaSpatialAudio`` prim (non-spatial, played once from time code 0 of
the animation) whose ``filePath`` is the ``audio`` file given, or ``<stem>_audio.wav`` written next to the USD
from the animation's own 16 kHz audio; without either there is no audio prim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from facecast.animation import Animation
from facecast.characters.character import JAW_PARTS, JAW_SHAPES
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.export.csv import arkit_matrix
from facecast.export.gltf import (
    COLORS,
    EYE_PARTS,
    EYE_ZONES,
    character_jaw,
    estimate_jaw_pivot,
    eye_angles,
    eye_quaternions,
    eye_zones,
    jaw_tracks,
    rigid_eyes,
    tongue_matrix,
    vertex_normals,
)
from facecast.fileio import temporary_path, writing

ROOT = "/facecast_head"
JOINTS = ("root", "root/jaw", "root/eye_right", "root/eye_left")
SUFFIXES = (".usd", ".usda", ".usdc")


def _pxr():
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, UsdSkel, Vt
    except ImportError:
        raise RuntimeError('writing USD needs the usd-core package: pip install "facecast[usd]"') from None
    return Gf, Sdf, Usd, UsdGeom, UsdSkel, Vt


def time_codes(anim: Animation) -> np.ndarray:
    """The USD time code of every frame: ``t * fps``, snapped to whole frames when every frame is within 1 % of
    one (A2F frame times sit on whole audio samples, e.g. 533/16000 s rather than 1/30 s)."""
    codes = np.asarray(anim.times, np.float64) * float(anim.fps)
    snapped = np.round(codes)
    return snapped if np.all(np.abs(codes - snapped) < 0.01) else np.round(codes, 6)


def _new_stage(anim: Animation):
    _, _, Usd, UsdGeom, _, _ = _pxr()
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    codes = time_codes(anim)
    stage.SetTimeCodesPerSecond(float(anim.fps))
    stage.SetFramesPerSecond(float(anim.fps))
    stage.SetStartTimeCode(float(codes[0]))
    stage.SetEndTimeCode(float(codes[-1]))
    return stage


def _define_mesh(stage, path: str, vertices: np.ndarray, faces: np.ndarray):
    _, _, _, UsdGeom, _, Vt = _pxr()
    mesh = UsdGeom.Mesh.Define(stage, path)
    faces = np.asarray(faces, np.int32)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(vertices, np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    normals = mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(vertex_normals(vertices, faces)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    extent = np.stack([vertices.min(axis=0), vertices.max(axis=0)]).astype(np.float32)
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(extent))
    return mesh, normals


def _material(stage, name: str, rgba: tuple) -> Any:
    """A ``UsdPreviewSurface`` material of one colour under ``/facecast_head/Materials`` (made once)."""
    from pxr import Gf, Sdf, UsdShade

    path = f"{ROOT}/Materials/{name}"
    existing = UsdShade.Material.Get(stage, path)
    if existing:
        return existing
    material = UsdShade.Material.Define(stage, path)
    shader = UsdShade.Shader.Define(stage, f"{path}/PreviewSurface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*map(float, rgba[:3])))
    shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.6 if name != "pupil" else 0.2)
    shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    return material


def _paint(stage, mesh, name: str, faces: np.ndarray, character: Any) -> None:
    """Display colours and materials of a part; eyeballs get sclera, iris and pupil subsets."""
    from pxr import UsdGeom, UsdShade, Vt

    binding = UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim())
    color = COLORS.get(name, (0.8, 0.8, 0.8, 1.0))
    display = mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant)
    if name not in EYE_PARTS:
        display.Set(Vt.Vec3fArray.FromNumpy(np.array([color[:3]], np.float32)))
        binding.Bind(_material(stage, name, color))
        return
    pivot = np.asarray(getattr(character, "eye_pivots", np.zeros((2, 3))), np.float64)[EYE_PARTS.index(name)]
    zones = eye_zones(np.asarray(character.parts[name].vertices), faces, pivot)
    palette = np.array([c[:3] for _, c, _ in EYE_ZONES], np.float32)
    display.SetInterpolation(UsdGeom.Tokens.uniform)
    display.Set(Vt.Vec3fArray.FromNumpy(palette[zones]))
    binding.Bind(_material(stage, "sclera", EYE_ZONES[0][1]))
    imageable = UsdGeom.Imageable(mesh.GetPrim())
    for z, (zone, rgba, _) in enumerate(EYE_ZONES):
        indices = np.flatnonzero(zones == z).astype(np.int32)
        if indices.size:
            subset = UsdGeom.Subset.CreateGeomSubset(imageable, zone, UsdGeom.Tokens.face,
                                                     Vt.IntArray.FromNumpy(indices), "materialBind")  # fmt: skip
            UsdShade.MaterialBindingAPI.Apply(subset.GetPrim()).Bind(_material(stage, zone, rgba))
    binding.SetMaterialBindSubsetsFamilyType(UsdGeom.Tokens.partition)


def _audio(stage, path: Path, anim: Animation, audio: str | Path | None) -> Path | None:
    """The ``UsdMediaSpatialAudio`` prim (see the module docstring); returns a sidecar wav it wrote, if any."""
    from pxr import Sdf, UsdMedia

    written = None
    if audio is None:
        if anim.audio is None:
            return None
        import soundfile as sf

        from facecast.constants import SAMPLE_RATE

        written = path.with_name(f"{path.stem}_audio.wav")
        tmp = temporary_path(written)
        try:
            sf.write(str(tmp), np.asarray(anim.audio, np.float32), SAMPLE_RATE, subtype="PCM_16", format="WAV")
            os.replace(tmp, written)
        finally:
            if tmp.exists():
                tmp.unlink()
        audio = written
    audio = Path(audio)
    try:
        asset = "./" + audio.resolve().relative_to(path.resolve().parent).as_posix()
    except ValueError:
        asset = audio.resolve().as_posix()
    prim = UsdMedia.SpatialAudio.Define(stage, f"{ROOT}/Audio")
    prim.CreateFilePathAttr(Sdf.AssetPath(asset))
    prim.CreateAuralModeAttr(UsdMedia.Tokens.nonSpatial)
    prim.CreatePlaybackModeAttr(UsdMedia.Tokens.onceFromStart)
    prim.CreateStartTimeAttr(Sdf.TimeCode(float(time_codes(anim)[0])))
    return written


def _part_shapes(character: Any, name: str) -> tuple[list[str], np.ndarray]:
    names = list(ARKIT_NAMES)
    deltas = np.asarray(character.arkit_deltas[name], np.float32)
    if name == "tongue" and getattr(character, "tongue_deltas", None) is not None:
        names += list(TONGUE_NAMES)
        deltas = np.concatenate([deltas, np.asarray(character.tongue_deltas, np.float32)])
    return names, deltas


def _joint_of(part: str) -> int:
    if part in JAW_PARTS:
        return 1
    if part in EYE_PARTS:
        return 2 + EYE_PARTS.index(part)
    return 0


def _skel_stage(anim: Animation, character: Any):
    Gf, _, _, UsdGeom, UsdSkel, Vt = _pxr()
    stage = _new_stage(anim)
    root = UsdSkel.Root.Define(stage, ROOT)
    stage.SetDefaultPrim(root.GetPrim())
    skel = UsdSkel.Skeleton.Define(stage, f"{ROOT}/Skeleton")
    parts = character.parts
    lower = parts["lower_teeth"].vertices if "lower_teeth" in parts else np.zeros((1, 3))
    pivots = np.zeros((4, 3))
    pivots[1] = estimate_jaw_pivot(np.asarray(lower, np.float64))
    pivots[2:] = np.asarray(getattr(character, "eye_pivots", np.zeros((2, 3))), np.float64)

    def translate(p: np.ndarray) -> Gf.Matrix4d:
        return Gf.Matrix4d(1.0).SetTranslate(Gf.Vec3d(*map(float, p)))

    skel.CreateJointsAttr(list(JOINTS))
    skel.CreateBindTransformsAttr(Vt.Matrix4dArray([translate(p) for p in pivots]))
    skel.CreateRestTransformsAttr(Vt.Matrix4dArray([translate(p) for p in pivots]))

    shape_names = list(ARKIT_NAMES) + list(TONGUE_NAMES)
    skel_anim = UsdSkel.Animation.Define(stage, f"{ROOT}/Skeleton/Animation")
    skel_anim.CreateJointsAttr(list(JOINTS))
    skel_anim.CreateBlendShapesAttr(shape_names)
    skel_anim.CreateScalesAttr(Vt.Vec3hArray([Gf.Vec3h(1, 1, 1)] * len(JOINTS)))
    UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets([skel_anim.GetPath()])
    UsdSkel.BindingAPI.Apply(root.GetPrim()).CreateSkeletonRel().SetTargets([skel.GetPath()])

    n = len(anim)
    translations = np.tile(pivots, (n, 1, 1))
    rotations = np.tile([0.0, 0.0, 0.0, 1.0], (n, len(JOINTS), 1))
    motion = character_jaw(character, anim)
    if motion is not None:
        translations[:, 1], rotations[:, 1] = jaw_tracks(motion, pivots[1])
    arkit = arkit_matrix(anim)
    for e in range(2):
        rotations[:, 2 + e] = eye_quaternions(eye_angles(character, arkit, anim.eyes, e))
    weights = np.concatenate([arkit, tongue_matrix(anim)], axis=1).astype(np.float32)
    t_attr = skel_anim.CreateTranslationsAttr()
    r_attr = skel_anim.CreateRotationsAttr()
    w_attr = skel_anim.CreateBlendShapeWeightsAttr()
    for i, code in enumerate(time_codes(anim)):
        t_attr.Set(Vt.Vec3fArray.FromNumpy(translations[i].astype(np.float32)), float(code))
        r_attr.Set(Vt.QuatfArray([Gf.Quatf(float(q[3]), float(q[0]), float(q[1]), float(q[2])) for q in rotations[i]]),
                   float(code))  # fmt: skip
        w_attr.Set(Vt.FloatArray.FromNumpy(weights[i]), float(code))

    UsdGeom.Scope.Define(stage, f"{ROOT}/Geom")
    for name, part in parts.items():
        path = f"{ROOT}/Geom/{name}"
        mesh, _ = _define_mesh(stage, path, np.asarray(part.vertices, np.float32), part.faces)
        _paint(stage, mesh, name, np.asarray(part.faces), character)
        binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
        binding.CreateJointIndicesPrimvar(True, 1).Set(Vt.IntArray([_joint_of(name)]))
        binding.CreateJointWeightsPrimvar(True, 1).Set(Vt.FloatArray([1.0]))
        binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))
        if name in EYE_PARTS and rigid_eyes(character):
            continue  # eyeballs turn with their joint only
        names, deltas = _part_shapes(character, name)
        used, targets = [], []
        for shape, delta in zip(names, deltas, strict=True):
            moved = np.flatnonzero(np.any(delta != 0, axis=1))
            if moved.size == 0 or (name in JAW_PARTS and shape in JAW_SHAPES):
                continue  # (the jaw joint carries the jaw parts' jaw motion)
            blend = UsdSkel.BlendShape.Define(stage, f"{path}/{shape}")
            blend.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(delta[moved])))
            blend.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(moved.astype(np.int32)))
            used.append(shape)
            targets.append(blend.GetPath())
        if used:
            binding.CreateBlendShapesAttr(used)
            binding.CreateBlendShapeTargetsRel().SetTargets(targets)
    return stage


def _point_cache_stage(anim: Animation, character: Any):
    _, _, _, UsdGeom, _, Vt = _pxr()
    from facecast.characters import apply_weights

    stage = _new_stage(anim)
    root = UsdGeom.Xform.Define(stage, ROOT)
    stage.SetDefaultPrim(root.GetPrim())
    n = len(anim)
    tongue = tongue_matrix(anim) if "tongue" in character.parts else None
    jaw = character_jaw(character, anim)
    meshes = {name: _define_mesh(stage, f"{ROOT}/{name}", np.asarray(p.vertices, np.float32), p.faces)
              for name, p in character.parts.items()}  # fmt: skip
    for name, (mesh, _) in meshes.items():
        _paint(stage, mesh, name, np.asarray(character.parts[name].faces), character)
    codes = time_codes(anim)
    for start in range(0, n, 64):
        block = slice(start, min(n, start + 64))
        posed = apply_weights(character, arkit_matrix(anim)[block], None if tongue is None else tongue[block],
                              None if jaw is None else jaw[block], np.asarray(anim.eyes)[block])  # fmt: skip
        for name, (mesh, normals) in meshes.items():
            faces = character.parts[name].faces
            for i in range(block.stop - block.start):
                code = float(codes[start + i])
                mesh.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(posed[name][i]), code)
                normals.Set(Vt.Vec3fArray.FromNumpy(vertex_normals(posed[name][i], faces)), code)
    return stage


def write_usd(
    anim: Animation,
    path: str | Path,
    character: Any = None,
    geometry: bool = False,
    audio: str | Path | None = None,
) -> Path:
    """Write ``anim`` on ``character`` (default: the built-in CC0 head) as USD, atomically; returns the path.

    The suffix picks the encoding (``.usda`` text, ``.usdc``/``.usd`` binary crate). ``geometry=True`` writes
    the per-frame point cache instead of the UsdSkel rig. ``audio`` is the sound file the audio prim references
    (default: the animation's own audio, written as ``<stem>_audio.wav`` next to the file).
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: USD files end in {', '.join(SUFFIXES)}")
    if len(anim) == 0:
        raise ValueError("cannot write an empty animation as USD")
    _pxr()
    if character is None:
        from facecast.characters import build_default_character

        character = build_default_character()
    stage = _point_cache_stage(anim, character) if geometry else _skel_stage(anim, character)
    with writing(path):  # a full or read-only file system: one OutputError naming the file
        path.parent.mkdir(parents=True, exist_ok=True)
        _audio(stage, path, anim, audio)  # a full or read-only file system: one OutputError naming the file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            if not stage.GetRootLayer().Export(str(tmp)):
                raise RuntimeError(f"{path}: USD could not write the file")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return path


def write_usd_point_cache(anim: Animation, path: str | Path, character: Any = None) -> Path:
    """:func:`write_usd` with ``geometry=True``."""
    return write_usd(anim, path, character, geometry=True)
