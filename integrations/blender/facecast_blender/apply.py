"""Put a :class:`~.core.FaceAnimation` on a Blender scene: shape-key actions, jaw and eye rotations (bones or
objects), the sound strip, the scene's fps and frame range."""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
from mathutils import Matrix

from . import core


@dataclass
class ApplyReport:
    """What :func:`apply_animation` keyed."""

    frames: tuple[int, int] = (0, 0)
    shape_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    """mesh object -> {shape key: curve}"""
    rig: dict[str, str] = field(default_factory=dict)
    """"jaw"/"eye_right"/"eye_left" -> the bone or object turned"""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        keyed = sum(len(v) for v in self.shape_keys.values())
        rig = ", ".join(f"{k}: {v}" for k, v in self.rig.items()) or "no jaw or eye rig driven"
        notes = "".join(f"; {note}" for note in self.notes)
        first, last = self.frames
        return f"facecast: frames {first}-{last}, {keyed} shape keys on {len(self.shape_keys)} meshes; {rig}{notes}"


def _root(obj: bpy.types.Object) -> bpy.types.Object:
    while obj.parent is not None:
        obj = obj.parent
    return obj


def _family(obj: bpy.types.Object) -> list[bpy.types.Object]:
    root = _root(obj)
    return [root, *root.children_recursive]


class _Actions:
    """One fresh action per animated data-block (object, shape-key block), made on first use; F-curves in it
    (Blender 4.2 to 5.x: legacy ``action.fcurves`` or a layered action's channel bag)."""

    def __init__(self) -> None:
        self._makers: dict[int, object] = {}

    def fcurve(self, id_block: bpy.types.ID, path: str, index: int = 0):
        key = id_block.as_pointer()
        if key not in self._makers:
            self._makers[key] = self._start(id_block)
        return self._makers[key](path, index)

    @staticmethod
    def _start(id_block: bpy.types.ID):
        anim = id_block.animation_data or id_block.animation_data_create()
        action = bpy.data.actions.new(f"facecast_{id_block.name}")
        anim.action = action
        if hasattr(action, "fcurves"):  # Blender up to 4.x
            return lambda path, index: action.fcurves.new(path, index=index)
        from bpy_extras import anim_utils  # layered actions (Blender 4.4+)

        slot = anim.action_slot or action.slots.new(id_block.id_type, id_block.name)
        anim.action_slot = slot
        bag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        return lambda path, index: bag.fcurves.new(path, index=index)


def _key(fcurve, frames: list[int], values: list[float]) -> None:
    fcurve.keyframe_points.add(len(frames))
    fcurve.keyframe_points.foreach_set("co", [c for f, v in zip(frames, values, strict=True) for c in (f, v)])
    for point in fcurve.keyframe_points:
        point.interpolation = "LINEAR"
    fcurve.update()


def _rows(m: Matrix) -> list[list[float]]:
    return [list(r) for r in m]


def _rig_targets(family: list[bpy.types.Object]) -> dict[str, tuple]:
    """{"jaw"/"eye_*": (armature object, bone name) or (object, None)}: bones of the family's armatures first,
    else objects (empties or meshes) of the family named like them."""
    out: dict[str, tuple] = {}
    for arm in (o for o in family if o.type == "ARMATURE"):
        found = core.find_rig_parts([(b.name, b.head_local.x) for b in arm.data.bones])
        for part, name in found.items():
            out.setdefault(part, (arm, name))
    objects = [(o.name, o.matrix_world.translation.x) for o in family if o.type in ("EMPTY", "MESH")]
    for part, name in core.find_rig_parts(objects).items():
        out.setdefault(part, (bpy.data.objects[name], None))
    return out


def _rotate(actions: _Actions, target: tuple, rotations: list, at: list[float], frames: list[int]) -> str:
    """Key a bone's or object's rotation so it turns by each frame's rotation (Blender world axes) about its
    own origin."""
    obj, bone = target
    if bone is not None:  # pose rotation B with (W @ Rest) @ B = R @ (W @ Rest)
        base = obj.matrix_world.to_3x3().normalized() @ obj.data.bones[bone].matrix_local.to_3x3().normalized()
        holder, path, label, rest = obj.pose.bones[bone], f'pose.bones["{bone}"].rotation_quaternion', bone, None
    else:  # local rotation L' with P @ L' = R @ P @ L
        base = obj.parent.matrix_world.to_3x3().normalized() if obj.parent else Matrix.Identity(3)
        holder, path, label, rest = obj, "rotation_quaternion", obj.name, obj.matrix_basis.to_3x3().normalized()
    holder.rotation_mode = "QUATERNION"
    quats = []
    for r in rotations:
        m = core.local_rotation(r, _rows(base))
        quats.append(core.quaternion(m if rest is None else core.matmul(m, _rows(rest))))
    for c in range(4):
        _key(actions.fcurve(obj, path, c), frames, core.resample(at, [q[c] for q in quats], frames))
    return label


def _sound(scene: bpy.types.Scene, audio: str, start: int) -> str:
    """Add the audio as a sound strip at ``start`` (replacing an earlier facecast one); returns a note when
    Blender cannot (a build without audio, e.g. the bpy module)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # "strips" from Blender 4.4
    for old in [s for s in strips if s.name.startswith("facecast audio")]:
        strips.remove(old)
    try:
        strips.new_sound("facecast audio", audio, 1, start)
    except RuntimeError as exc:
        return f"sound strip not added ({str(exc).strip().removeprefix('Error: ')})"
    return ""


def set_scene_timing(scene: bpy.types.Scene, fps: float, start: int, frames: int) -> None:
    """The scene's fps (fps / fps_base) and frame range for ``frames`` animation frames from ``start``."""
    whole = max(1, round(fps))
    scene.render.fps, scene.render.fps_base = whole, whole / fps
    scene.frame_start, scene.frame_end = start, start + max(frames, 1) - 1


def apply_animation(scene: bpy.types.Scene, obj: bpy.types.Object, anim: core.FaceAnimation, audio: str = "",
                    start: int = 1, set_timing: bool = True, whole_character: bool = True,
                    jaw: str = "AUTO", eyes: bool = True) -> ApplyReport:  # fmt: skip
    """Key ``anim`` on ``obj`` (a mesh with ARKit shape keys; with ``whole_character`` also every mesh under the
    same root that has some), turn the jaw (``jaw`` AUTO: only when no keyed mesh has a jawOpen key; ON; OFF)
    and eye bones or objects, add the audio as a sound strip and set the scene's fps and frame range."""
    if set_timing:
        set_scene_timing(scene, anim.fps, start, len(anim))
    fps = scene.render.fps / scene.render.fps_base
    frames, values = core.keyframes(anim, fps, start)
    at = core.scene_frames(anim, fps, start)
    report = ApplyReport(frames=(frames[0], frames[-1]) if frames else (start, start))
    meshes = [o for o in (_family(obj) if whole_character else [obj]) if o.type == "MESH"]
    actions = _Actions()
    for mesh in meshes:
        keys = mesh.data.shape_keys
        if keys is None:
            continue
        matched = core.match_shape_keys([k.name for k in keys.key_blocks[1:]], list(values))
        if not matched:
            continue
        for key, curve in matched.items():
            _key(actions.fcurve(keys, f'key_blocks["{key}"].value'), frames, values[curve])
        report.shape_keys[mesh.name] = matched
    if not report.shape_keys:
        raise ValueError(f"{obj.name}: no shape keys with ARKit names (jawOpen, eyeBlinkLeft, ...) to animate")
    targets = _rig_targets(_family(obj))
    if eyes and anim.eyes:
        for side in ("right", "left"):
            if f"eye_{side}" in targets:
                rotations = core.eye_rotations(anim, side)
                report.rig[f"eye_{side}"] = _rotate(actions, targets[f"eye_{side}"], rotations, at, frames)
    has_jaw_open = any("jawOpen" in m.values() for m in report.shape_keys.values())
    if "jaw" in targets and anim.jaw and (jaw == "ON" or (jaw == "AUTO" and not has_jaw_open)):
        report.rig["jaw"] = _rotate(actions, targets["jaw"], core.jaw_rotations(anim), at, frames)
    elif "jaw" in targets:
        report.notes.append(f"jaw {targets['jaw'][1] or targets['jaw'][0].name} found, not turned "
                            + ("(jaw off)" if jaw == "OFF" else "(the shape keys have jawOpen)"))  # fmt: skip
    if audio:
        note = _sound(scene, audio, start)
        if note:
            report.notes.append(note)
    return report
