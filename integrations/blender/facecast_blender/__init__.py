"""facecast for Blender: pick an audio file and a mesh with ARKit shape keys, press Animate.

The 3D View's sidebar (N) has a facecast tab. Animate runs facecast (the installed ``facecast`` command, a
running ``facecast serve``, or a facecast JSON you already have), keys the shape keys at the scene's frames,
turns jaw and eye bones (or objects) when the rig has them, adds the audio as a sound strip and sets the scene's
fps and frame range.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import core

EMOTION_ITEMS = [("", "Neutral", "no explicit emotion")] + [(e, e.capitalize(), e) for e in core.EMOTIONS]
SOURCES = [
    ("COMMAND", "facecast command", "run the installed facecast command on the audio"),
    ("SERVER", "facecast server", "stream the audio to a running facecast serve (gRPC)"),
    ("JSON", "facecast JSON", "use a facecast JSON file made earlier (facecast animate --formats json)"),
]


def _is_mesh(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


class FacecastSettings(bpy.types.PropertyGroup):
    """The panel's options (stored on the scene)."""

    audio: StringProperty(name="Audio", subtype="FILE_PATH", description="speech audio (wav, flac, ogg, mp3)")
    target: PointerProperty(name="Mesh", type=bpy.types.Object, poll=_is_mesh,
                            description="a mesh with ARKit shape keys (any usual spelling)")  # fmt: skip
    source: EnumProperty(name="Run", items=SOURCES, default="COMMAND")
    json_path: StringProperty(name="JSON", subtype="FILE_PATH", description="facecast animation JSON")
    server: StringProperty(name="Server", default="localhost:52000", description="host:port of facecast serve")
    model: StringProperty(name="Model", subtype="DIR_PATH", description="model folder (empty: the built-in model)")
    emotion: EnumProperty(name="Emotion", items=EMOTION_ITEMS, default="")
    emotion_strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=1.0)
    face_params: StringProperty(name="Face parameters", default="",
                                description="NAME=VALUE pairs, e.g. skin_strength=1.2, lip_open_offset=0")  # fmt: skip
    blinks: BoolProperty(name="Blinks", default=True)
    fps: FloatProperty(name="FPS", default=30.0, min=1.0, max=240.0, description="the animation's frame rate")
    set_timing: BoolProperty(name="Set scene fps and range", default=True)
    start: IntProperty(name="Start frame", default=1)
    whole_character: BoolProperty(name="All meshes of the character", default=True,
                                  description="also key the teeth, tongue ... under the same root")  # fmt: skip
    jaw: EnumProperty(name="Jaw", items=[("AUTO", "Auto", "turn a jaw bone only without a jawOpen shape key"),
                                         ("ON", "On", "turn the jaw bone"), ("OFF", "Off", "never")])  # fmt: skip
    eyes: BoolProperty(name="Eyes", default=True, description="turn eye bones or objects")
    add_sound: BoolProperty(name="Add sound strip", default=True)


class FacecastPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    executable: StringProperty(name="facecast command", default="facecast", subtype="FILE_PATH",
                               description="the facecast executable (pip install facecast)")  # fmt: skip

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop(self, "executable")


def _executable(context: bpy.types.Context) -> str:
    addon = context.preferences.addons.get(__package__)
    return addon.preferences.executable if addon else "facecast"


def load_animation(settings: FacecastSettings, executable: str = "facecast") -> core.FaceAnimation:
    """The animation the settings ask for (runs facecast or reads the JSON)."""
    audio = bpy.path.abspath(settings.audio) if settings.audio else ""
    if settings.source == "JSON":
        return core.read_facecast_json(bpy.path.abspath(settings.json_path))
    if not audio:
        raise ValueError("pick an audio file")
    if settings.source == "SERVER":
        return core.run_server(settings.server, audio, settings.emotion, settings.emotion_strength,
                               settings.face_params)  # fmt: skip
    return core.run_facecast(executable, audio, settings.fps, model=bpy.path.abspath(settings.model) if
                             settings.model else "", emotion=settings.emotion,
                             emotion_strength=settings.emotion_strength, face_params=settings.face_params,
                             blinks=settings.blinks)  # fmt: skip


class FACECAST_OT_animate(bpy.types.Operator):
    """Animate the mesh's ARKit shape keys (and jaw and eyes) from the audio with facecast"""

    bl_idname = "facecast.animate"
    bl_label = "Animate"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .apply import apply_animation

        settings = context.scene.facecast
        obj = settings.target or context.active_object
        if obj is None or obj.type != "MESH":
            self.report({"ERROR"}, "pick a mesh with ARKit shape keys")
            return {"CANCELLED"}
        try:
            anim = load_animation(settings, _executable(context))
            audio = bpy.path.abspath(settings.audio) if settings.audio and settings.add_sound else ""
            report = apply_animation(context.scene, obj, anim, audio, settings.start, settings.set_timing,
                                     settings.whole_character, settings.jaw, settings.eyes)  # fmt: skip
        except (ValueError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, report.summary())
        return {"FINISHED"}


class FACECAST_PT_panel(bpy.types.Panel):
    bl_label = "facecast"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "facecast"

    def draw(self, context: bpy.types.Context) -> None:
        s, layout = context.scene.facecast, self.layout
        layout.prop(s, "source")
        layout.prop(s, "audio")
        if s.source == "JSON":
            layout.prop(s, "json_path")
        if s.source == "SERVER":
            layout.prop(s, "server")
        layout.prop(s, "target")
        if s.source == "COMMAND":
            layout.prop(s, "model")
            layout.prop(s, "fps")
            layout.prop(s, "blinks")
        if s.source != "JSON":
            row = layout.row()
            row.prop(s, "emotion")
            row.prop(s, "emotion_strength")
            layout.prop(s, "face_params")
        box = layout.box()
        for name in ("start", "set_timing", "whole_character", "jaw", "eyes", "add_sound"):
            box.prop(s, name)
        layout.operator(FACECAST_OT_animate.bl_idname, icon="PLAY_SOUND")


CLASSES = (FacecastSettings, FacecastPreferences, FACECAST_OT_animate, FACECAST_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.facecast = PointerProperty(type=FacecastSettings)


def unregister() -> None:
    del bpy.types.Scene.facecast
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
