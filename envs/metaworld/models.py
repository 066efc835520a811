"""Meta-World's Sawyer scenes, read from the installed `metaworld` package, and their MJX form.

`load_reference_model(task)` is the scene exactly as `metaworld` simulates it (its XML plus the
mocap-weld data that `SawyerMocapBase.reset_mocap_welds` writes at construction).
`load_mjx_model(task)` is the same scene with the changes MJX needs, every one of them listed in
`MJX_CHANGES` below with its reason; nothing else differs, and `load_mjx_model` checks that masses,
inertias, joints, actuators, the weld and the time step are bit-for-bit those of the reference.

No asset is copied into this repository: the XML and meshes are read from the installed package.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import importlib.util
import math
import pathlib
from functools import cache

import mujoco
import numpy as np

# metaworld 3.1.x pins mujoco==3.3.0; the port targets mujoco 4.0 / mujoco-mjx 3.17, which only
# metaworld 3.0.0 accepts (pyproject.toml). Task semantics are ported from 3.0.0's source.
SUPPORTED_METAWORLD_VERSIONS: tuple[str, ...] = ("3.0.0",)

# MT10, in Meta-World's order (metaworld.env_dict.MT10_V3), and the scene each task loads.
MT10_SCENES: dict[str, str] = {
    "reach-v3": "sawyer_reach_v3.xml",
    "push-v3": "sawyer_push_v3.xml",
    "pick-place-v3": "sawyer_pick_place_v3.xml",
    "door-open-v3": "sawyer_door_pull.xml",
    "drawer-open-v3": "sawyer_drawer.xml",
    "drawer-close-v3": "sawyer_drawer.xml",
    "button-press-topdown-v3": "sawyer_button_press_topdown.xml",
    "peg-insert-side-v3": "sawyer_peg_insertion_side.xml",
    "window-open-v3": "sawyer_window_horizontal.xml",
    "window-close-v3": "sawyer_window_horizontal.xml",
}

# `SawyerMocapBase.reset_mocap_welds`: Meta-World overwrites the weld's data at construction (no
# anchor, no relative pose, torque scale 5). mujoco 4 has 12 eq_data entries; the 12th is unused
# by a weld and left as compiled.
MOCAP_WELD_DATA = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


class MetaWorldUnavailableError(ImportError):
    """The `metaworld` package is missing, of an unsupported version, or lacks its assets."""


def metaworld_dir() -> pathlib.Path:
    """The installed `metaworld` package's folder (found without importing it)."""
    spec = importlib.util.find_spec("metaworld")
    if spec is None or spec.origin is None:
        raise MetaWorldUnavailableError(
            "the Meta-World port reads its scenes from the `metaworld` package, which is not "
            f"installed; install metaworld=={SUPPORTED_METAWORLD_VERSIONS[-1]} "
            "(`pip install -e .` installs the pinned version)"
        )
    version = importlib.metadata.version("metaworld")
    if version not in SUPPORTED_METAWORLD_VERSIONS:
        raise MetaWorldUnavailableError(
            f"metaworld {version} is installed, but the port is written against "
            f"{list(SUPPORTED_METAWORLD_VERSIONS)} (task semantics and scenes can change between "
            f"releases); install metaworld=={SUPPORTED_METAWORLD_VERSIONS[-1]}"
        )
    return pathlib.Path(spec.origin).parent


def check_task(task: str) -> str:
    """`task` if it is an MT10 task name, else a ValueError listing the valid names."""
    if not isinstance(task, str):
        raise TypeError(f"task name must be a str, got {type(task).__name__}")
    if task not in MT10_SCENES:
        raise ValueError(
            f"unknown Meta-World task {task!r}; task must be one of {list(MT10_SCENES)}"
        )
    return task


def scene_path(task: str) -> pathlib.Path:
    """The installed XML scene of an MT10 task."""
    path = metaworld_dir() / "assets" / "sawyer_xyz" / MT10_SCENES[check_task(task)]
    if not path.is_file():
        raise MetaWorldUnavailableError(f"the installed metaworld has no scene {path}")
    return path


def load_reference_model(task: str) -> mujoco.MjModel:
    """The scene as `metaworld` simulates it: its XML, with Meta-World's mocap weld data."""
    model = mujoco.MjModel.from_xml_path(str(scene_path(task)))
    _set_mocap_weld(model)
    return model


def _set_mocap_weld(model: mujoco.MjModel) -> None:
    for i in range(model.neq):
        if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
            model.eq_data[i, : MOCAP_WELD_DATA.size] = MOCAP_WELD_DATA


# ==================================================================================================
# Every change made for MJX, in one place.
#
# MJX (mujoco-mjx 3.17, JAX implementation) runs the reference scenes unchanged except for:
#   1. collision pairs it has no function for: a cylinder against a box or a mesh;
#   2. cost: it computes every candidate geom pair at every physics step (no broadphase) and runs
#      its solver a fixed number of iterations under `vmap`; large convex meshes are slow.
# So we change collision geometry and solver settings only. Masses and inertias never change
# (`load_mjx_model` verifies it); the contact parameters of every kept pair are those MuJoCo
# would mix for the two geoms itself.
# ==================================================================================================


@dataclasses.dataclass(frozen=True)
class MjxChange:
    """One change to a reference scene, with why it is needed and why it is the nearest one."""

    target: str
    change: str
    reason: str


# Solver: the reference runs Newton with up to 50 iterations and 50 line-search steps to a
# tolerance of 1e-10 (which float32 never reaches, so MJX would always run all 50 x 50).
SOLVER_ITERATIONS = 8
SOLVER_LS_ITERATIONS = 8

# Cylinders become prisms on a regular polygon with this many sides (the puck, the button): the
# MJX face limit is 20 vertices per face, and 16 sides keep the side surface within 0.7 % of the
# radius for the puck's equal-area polygon, 1.9 % for the button's inscribed one.
PRISM_SIDES = 16

# Geoms are named as in the XML, or "<body>/<k>" for the k-th geom of a body when unnamed.
_GRIPPER = ("leftpad_geom", "rightpad_geom", "leftclaw_it", "rightclaw_it")
_TABLE = "tablelink/2"  # the table's collision box (0 and 1 are visual)
_WALLS = ("RetainingWall/0", "RetainingWall/1", "RetainingWall/2", "RetainingWall/3")

# Explicit contact pairs per scene: every geom pair that can touch. MuJoCo's own filtering
# (contype/conaffinity) gives more candidates; the ones dropped here cannot touch in these scenes
# (reasons in MJX_CHANGES), which tests/envs/metaworld/test_metaworld_models.py checks in native
# MuJoCo on the reference scene under extreme and random policies.
CONTACT_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "sawyer_reach_v3.xml": (
        *((g, "objGeom") for g in _GRIPPER),
        (_TABLE, "objGeom"),
        *((w, "objGeom") for w in _WALLS),
        *((_TABLE, g) for g in _GRIPPER),
    ),
}
CONTACT_PAIRS["sawyer_push_v3.xml"] = CONTACT_PAIRS["sawyer_reach_v3.xml"]
# pick-place's scene is push's with the goal site in the air: the same geoms. A lifted puck stays
# between the pads and claws (checked under Meta-World's scripted pick-place policy, with noise).
CONTACT_PAIRS["sawyer_pick_place_v3.xml"] = CONTACT_PAIRS["sawyer_reach_v3.xml"]

# The drawer scene (drawer-open, drawer-close): the gripper base's collision mesh, the drawer's
# collision boxes and handle capsules (drawer_link/2..9: front, back, left, right, bottom; the
# handle's two posts and bar), and the fixed case's boxes (drawercase_link/1..5: left, right,
# back, bottom, top).
_GRIPPER_BASE = "right_hand/0"
_DRAWER_REACHABLE = (
    "drawer_link/2",
    "drawer_link/4",
    "drawer_link/5",
    "drawer_link/6",
    "drawer_link/7",
    "drawer_link/8",
    "drawer_link/9",
    "drawercase_link/1",
    "drawercase_link/2",
    "drawercase_link/4",
    "drawercase_link/5",
)
CONTACT_PAIRS["sawyer_drawer.xml"] = (
    # the drawer's back against the back retaining wall and the case's back plate: in contact
    # at every step while the drawer is closed (it rests there)
    *(("RetainingWall/1", g) for g in ("drawer_link/3", "drawer_link/6")),
    *(("drawercase_link/3", g) for g in ("drawer_link/3", "drawer_link/6")),
    *((_TABLE, g) for g in _GRIPPER),
    # fingers: every drawer and case part they reach from outside or inside the open drawer
    *((g, part) for g in _GRIPPER for part in _DRAWER_REACHABLE),
    # the gripper base: the front, the handle and the case's outside
    *(
        (_GRIPPER_BASE, part)
        for part in (
            "drawer_link/2",
            "drawer_link/7",
            "drawer_link/8",
            "drawer_link/9",
            "drawercase_link/1",
            "drawercase_link/2",
            "drawercase_link/5",
        )
    ),
)

# The button-press-topdown scene: the button box's four collision boxes around the button's hole
# (buttonbox/3..6: the blocks beside the hole in y, then in x; fixed), and the button on its
# slide joint, three cylinders along the press axis (button/2..4: the rod through the hole, the
# collar, the cap the fingers press). Meta-World's buttonbox is welded to the world, so MuJoCo's
# parent filter does not separate it from its child, the button: the pressed button's collar
# slides into the hole (its radius 2.6 cm against the hole's 2.4 cm half-width in y: 2 mm
# lateral contacts on both sides, in the reference too) and its cap lands on the box's top.
_BUTTON = ("button/2", "button/3", "button/4")
_BUTTONBOX = ("buttonbox/3", "buttonbox/4", "buttonbox/5", "buttonbox/6")
CONTACT_PAIRS["sawyer_button_press_topdown.xml"] = (
    *((_TABLE, g) for g in _GRIPPER),
    # the pressed button's collar in the hole and its cap on the box's top
    *((part, box) for part in ("button/3", "button/4") for box in _BUTTONBOX),
    # fingers: the button (cap from above, collar and rod when they reach down beside the cap)
    # and the box from above and beside
    *((g, part) for g in _GRIPPER for part in _BUTTON + _BUTTONBOX),
    # the gripper base: the cap and the box from above
    *((_GRIPPER_BASE, part) for part in ("button/4", *_BUTTONBOX)),
)

# The window scene (window-open, window-close): the window's frame body is unnamed in the XML
# (its geoms are "None/k"): its posts (None/2 left, None/4 right), base plate (None/3), bottom
# and top bars (None/5, None/6), all fixed, welded to the world, so MuJoCo's parent filter
# does not separate them from the sash; the sash (windowb_a, on the slide joint along x, range
# [0, 0.2]): the handle's two mounting discs (windowb_a/7, 8: cylinders), its two arms and its
# grip (windowb_a/9, 10, 11: capsules), and its frame and glass boxes (windowb_a/12..17: right
# and left sides, top and bottom bars, glass, mullion); the fixed pane (windowb_b/2..7).
_WINDOW_FRAME = ("None/2", "None/3", "None/4", "None/5", "None/6")
_SASH = tuple(f"windowb_a/{k}" for k in range(7, 18))
_FIXED_PANE = tuple(f"windowb_b/{k}" for k in range(2, 8))
CONTACT_PAIRS["sawyer_window_horizontal.xml"] = (
    # the sash's stops: pushed open, its right side and the handle's discs and arms reach the
    # right post (the joint limit is soft: the pushed sash overshoots it by millimetres);
    # pushed closed, its left side reaches the left post
    *(("None/4", part) for part in ("windowb_a/7", "windowb_a/8", "windowb_a/9")),
    *(("None/4", part) for part in ("windowb_a/10", "windowb_a/12")),
    ("None/2", "windowb_a/13"),
    # fingers: every part of the window (from in front, above, behind and into the frame's
    # openings), the table, and the back retaining wall (reached behind the window)
    *((g, part) for g in _GRIPPER for part in _WINDOW_FRAME + _SASH + _FIXED_PANE),
    *((_TABLE, g) for g in _GRIPPER),
    *(("RetainingWall/1", g) for g in _GRIPPER),
    # the gripper base: the window's front and top, into the sash's opening, and the fixed
    # pane from behind; not the bottom bars and the base plate (under the fingers)
    *(
        (_GRIPPER_BASE, part)
        for part in (
            "None/2",
            "None/4",
            "None/6",
            *(f"windowb_a/{k}" for k in (7, 8, 9, 10, 11, 12, 13, 14, 16, 17)),
            *(f"windowb_b/{k}" for k in range(3, 8)),
        )
    ),
)

# The door scene (door-open): the safe's boxes (doorlockB/1..5: left (hinge side) and right
# sides, top, bottom, back; fixed, welded to the world, so MuJoCo's parent filter does not
# separate them from the door) and, on the door's hinge, the handle (door_link/5, 6: its disc on
# the door and its shaft, cylinders along y; door_link/7, 8: its grip, two cylinders along x)
# and the door's panel (door_link/9, a box).
_DOOR_HANDLE = ("door_link/5", "door_link/6", "door_link/7", "door_link/8")
_SAFE_REACHABLE = ("doorlockB/1", "doorlockB/2", "doorlockB/3")
CONTACT_PAIRS["sawyer_door_pull.xml"] = (
    # the shut door's panel rests against the safe's hinge side
    ("door_link/9", "doorlockB/1"),
    *((_TABLE, g) for g in _GRIPPER),
    # fingers: the handle, the panel, and every box of the safe (its back plate reached
    # through the open door)
    *((g, part) for g in _GRIPPER for part in (*_DOOR_HANDLE, "door_link/9")),
    *((g, f"doorlockB/{k}") for g in _GRIPPER for k in range(1, 6)),
    # the gripper base: the handle, the panel, the safe's sides and top
    *((_GRIPPER_BASE, part) for part in (*_DOOR_HANDLE, "door_link/9", *_SAFE_REACHABLE)),
)

# The peg scene (peg-insert-side): the peg (a box on a free joint) and the block around the
# hole, whose body is unnamed in the XML (its geoms are "None/k", all boxes, fixed: None/2 the
# top plate, None/3 below the hole, None/4 and None/5 beside it, None/6 above it, None/7 and
# None/8 the side plates).
_PEG_BLOCK = tuple(f"None/{k}" for k in range(2, 9))
CONTACT_PAIRS["sawyer_peg_insertion_side.xml"] = (
    (_TABLE, "peg"),
    *((_TABLE, g) for g in _GRIPPER),
    # fingers and the gripper base: the peg and every part of the block
    *((g, "peg") for g in (*_GRIPPER, _GRIPPER_BASE)),
    *((g, part) for g in (*_GRIPPER, _GRIPPER_BASE) for part in _PEG_BLOCK),
    # the peg in the hole, and carried against the block anywhere
    *(("peg", part) for part in _PEG_BLOCK),
)

# Cylinders made convex prisms (scene -> geom names), other than the puck: regular 16-gons
# inscribed in the cylinder, with a vertex on each of the geom's x and y axes, so a contact
# along those axes is where the reference has it (the button's collar against the hole's walls,
# which are normal to the geom's x and y axes: 2 mm deep in y and touching in x, as in the
# reference); elsewhere the side lies at most 1.9 % of the radius inside the cylinder.
PRISM_CYLINDERS: dict[str, tuple[str, ...]] = {
    "sawyer_button_press_topdown.xml": _BUTTON,
    "sawyer_window_horizontal.xml": ("windowb_a/7", "windowb_a/8"),
    "sawyer_door_pull.xml": _DOOR_HANDLE,
}

# Boxes whose margin moves into their size (scene -> geom names): the finger pads and claws carry
# a 1 mm margin, which MJX's box-box and capsule-box collisions drop (they report no contact for
# separated geoms). A box grown by m on every face starts touching where the margin would; the
# drawer scene needs it: the reset pulls the drawer out to within 0.3 mm of the resting claw,
# and the reference's margin pushes it away over the first steps.
MARGIN_IN_SIZE: dict[str, tuple[str, ...]] = {
    "sawyer_drawer.xml": _GRIPPER,
    "sawyer_button_press_topdown.xml": _GRIPPER,
    "sawyer_window_horizontal.xml": _GRIPPER,
    "sawyer_door_pull.xml": _GRIPPER,
    "sawyer_peg_insertion_side.xml": _GRIPPER,
}

# Collision hulls limited to this many vertices (mesh name -> count). MuJoCo's hull of the
# gripper base (mesh eGripperBase, 6693 vertices) has 883 vertices and 1762 faces; MJX's
# separating-axis test against a box costs faces x edges, so that hull is out of reach.
# `maxhullvert` keeps 32 of the hull's vertices: the reduced hull lies inside the full one and
# misses at most 3.4 mm of it (94 % of its volume); 16 vertices would miss 8.9 mm.
HULL_VERTICES: dict[str, dict[str, int]] = {
    "sawyer_drawer.xml": {"eGripperBase": 32},
    "sawyer_button_press_topdown.xml": {"eGripperBase": 32},
    "sawyer_window_horizontal.xml": {"eGripperBase": 32},
    "sawyer_door_pull.xml": {"eGripperBase": 32},
    "sawyer_peg_insertion_side.xml": {"eGripperBase": 32},
}

# MJX's cap on the contacts passed to the solver, per contact dimension (scene -> count): the
# deepest ones are kept (mujoco.mjx collision_driver, numeric `max_contact_points`), which
# changes nothing while fewer contacts than that are active (see _CONTACT_CAP_CHANGE).
MAX_CONTACT_POINTS: dict[str, int] = {"sawyer_window_horizontal.xml": 64}

_DROPPED_PAIRS_REASON = (
    "every other candidate pair of MuJoCo's filtering cannot touch: the floor lies 0.9 m below "
    "the table top; the arm reaches |x| <= 0.5 and y <= 0.91 with the hand low (mocap and joint "
    "limits), short of the retaining walls (|x| = 0.68, y = 0.22 / 0.98); the gripper-base mesh "
    "stays above z = 0.05 (mocap floor), over the 4 cm puck; the two fingers' joint ranges keep "
    "them apart. Keeping them would only add MJX work, since MJX evaluates every pair every step"
)
_PUCK_CHANGE = MjxChange(
    target="objGeom (puck: cylinder, radius 0.02, half-height 0.02)",
    change=f"{PRISM_SIDES}-sided convex prism of the same half-height whose cross-section has "
    "the area of a disc of radius 0.02 + 0.001; its pairs get margin 0",
    reason="MJX has no cylinder-box or cylinder-mesh collision; a prism is the nearest convex "
    "shape it collides (a box has corners 8 mm out; a capsule cannot stand on its end). MJX has "
    "no margin for mesh pairs, so the finger pads' 1 mm margin is moved into the prism's side: "
    "for a side contact, margin m on a radius r is the same constraint as radius r + m",
)
_SOLVER_CHANGE = MjxChange(
    target="option: solver iterations / line-search iterations",
    change=f"50 / 50 -> {SOLVER_ITERATIONS} / {SOLVER_LS_ITERATIONS}",
    reason="under vmap MJX runs every iteration for every env; the reference tolerance (1e-10) is "
    "below float32 precision, so 50 x 50 would always run. Measured effect on the first steps: "
    "see tests/envs/metaworld/test_metaworld_differential.py",
)

_CONTACT_CAP_CHANGE = MjxChange(
    target="contacts passed to the solver (MJX numeric max_contact_points; MAX_CONTACT_POINTS)",
    change="the deepest 64 per contact dimension (3 and 4) instead of every slot (446: MJX "
    "reserves 4 per box or mesh pair and 2 per capsule pair, active or not)",
    reason="MJX's solver works on every reserved slot, so with the window's 120 pairs the "
    "solver, not collision detection, dominated the physics (measured forward pass at batch "
    "8: 95 ms with all slots, 26 ms with the cap, 14 ms of it collision). Keeping the deepest "
    "contacts changes nothing while fewer than 64 are active: native MuJoCo sees at most 24 "
    "(condim 3) and 26 (condim 4) under the extreme-policy scan, and the differential tests "
    "check that MJX's rollouts never fill the cap",
)

MJX_CHANGES: dict[str, tuple[MjxChange, ...]] = {
    "sawyer_reach_v3.xml": (
        _PUCK_CHANGE,
        MjxChange(
            target="contact pairs",
            change="MuJoCo's contype/conaffinity filtering -> the explicit pairs in CONTACT_PAIRS",
            reason=_DROPPED_PAIRS_REASON,
        ),
        _SOLVER_CHANGE,
    ),
}
MJX_CHANGES["sawyer_push_v3.xml"] = MJX_CHANGES["sawyer_reach_v3.xml"]
MJX_CHANGES["sawyer_pick_place_v3.xml"] = MJX_CHANGES["sawyer_reach_v3.xml"]
_GRIPPER_BASE_HULL_CHANGE = MjxChange(
    target="right_hand/0 (gripper base, mesh eGripperBase)",
    change="collision hull limited to 32 vertices (mesh maxhullvert; HULL_VERTICES)",
    reason="MuJoCo's hull of the mesh has 883 vertices and 1762 faces, far beyond what "
    "MJX's convex collision handles (its cost grows with faces x edges). The 32-vertex hull "
    "is a subset of the full one, at most 3.4 mm inside it; the mesh's mass and inertia "
    "are computed from the mesh itself and do not change (checked)",
)
_FINGER_MARGIN_CHANGE = MjxChange(
    target="leftpad_geom, rightpad_geom, leftclaw_it, rightclaw_it (finger boxes)",
    change="each half-size grown by the geom's 1 mm margin; their pairs get margin 0; their "
    "bodies keep the reference's mass and inertia explicitly (MARGIN_IN_SIZE)",
    reason="MJX's box-box, capsule-box and mesh collisions report no contact for separated "
    "geoms, so the margin is lost; a box grown by m on every face starts its contacts where the "
    "margin would (edges and corners sharp instead of rounded). It matters in the drawer scene: "
    "the reset pulls the drawer out to within 0.3 mm of the resting claw, and the margin's "
    "contact pushes it over the first steps (measured: without this the port's drawer stayed "
    "put and drawer-close succeeded 3 steps late on the scripted policy)",
)
MJX_CHANGES["sawyer_drawer.xml"] = (
    _GRIPPER_BASE_HULL_CHANGE,
    _FINGER_MARGIN_CHANGE,
    MjxChange(
        target="contact pairs",
        change="MuJoCo's contype/conaffinity filtering (187 candidates) -> the 59 explicit "
        "pairs in CONTACT_PAIRS",
        reason="the dropped candidates cannot touch: the drawer inside its fixed case (the "
        "slide joint's range keeps it off the case's sides, bottom and top), the drawer and "
        "the gripper against the floor 0.9 m below, the case's back and the drawer's back "
        "against the gripper (behind the drawer), the front and side retaining walls "
        "(out of reach). Checked in native MuJoCo on the reference scene under extreme and "
        "scripted policies (tests/envs/metaworld/test_metaworld_models.py)",
    ),
    _SOLVER_CHANGE,
)

MJX_CHANGES["sawyer_button_press_topdown.xml"] = (
    MjxChange(
        target="button/2, button/3, button/4 (the button's rod, collar and cap: cylinders)",
        change="16-sided convex prisms inscribed in the cylinders, a vertex on each of the "
        "geom's x and y axes (PRISM_CYLINDERS)",
        reason="MJX has no cylinder-box or cylinder-mesh collision, and the button meets the "
        "fingers (boxes), the gripper base (mesh) and the button box (boxes). With vertices on "
        "the axes the collar's contacts with the hole's walls are the reference's (2 mm deep "
        "in y, touching in x); the cap's flat faces, which the fingers press and which land on "
        "the box, are unchanged in height",
    ),
    _GRIPPER_BASE_HULL_CHANGE,
    _FINGER_MARGIN_CHANGE,
    MjxChange(
        target="contact pairs",
        change="MuJoCo's contype/conaffinity filtering (99 candidates) -> the 45 explicit "
        "pairs in CONTACT_PAIRS",
        reason="the dropped candidates cannot touch: the button and the gripper against the "
        "floor 0.9 m below, the button against the table (it stands 11 cm up on the box) and "
        "the retaining walls (out of reach), the rod against the hole's walls (2.1 cm against "
        "2.4 cm), the gripper base against the table (mocap floor) and the button's rod and "
        "collar (under the wider cap). Checked in native MuJoCo on the reference scene under "
        "extreme and scripted policies (tests/envs/metaworld/test_metaworld_models.py)",
    ),
    _SOLVER_CHANGE,
)

MJX_CHANGES["sawyer_window_horizontal.xml"] = (
    MjxChange(
        target="windowb_a/7, windowb_a/8 (the handle's mounting discs: cylinders, axis along y)",
        change="16-sided convex prisms inscribed in the cylinders, a vertex on each of the "
        "geom's x and y axes (PRISM_CYLINDERS)",
        reason="MJX has no cylinder-box or cylinder-mesh collision, and the discs meet the "
        "fingers (boxes), the gripper base (mesh) and the right post (a box) when the sash is "
        "pushed open. With a vertex on the geom's x axis (world x, the slide's axis) the discs "
        "reach exactly as far towards the post as the cylinders",
    ),
    _GRIPPER_BASE_HULL_CHANGE,
    _FINGER_MARGIN_CHANGE,
    MjxChange(
        target="contact pairs",
        change="MuJoCo's contype/conaffinity filtering (331 candidates) -> the 120 explicit "
        "pairs in CONTACT_PAIRS",
        reason="the dropped candidates cannot touch: the arm's wrist link (right_l6) stays "
        "above the window; the sash against the frame's bars and the fixed pane (the slide "
        "joint holds it 1 to 2 mm clear of them in y and z; along x only its sides, handle "
        "discs and arms reach the posts); the window and the gripper against the floor 0.9 m "
        "below and the side and front retaining walls (out of reach); the gripper base against "
        "the table (mocap floor) and the window's bottom bars and base plate. Checked in native "
        "MuJoCo on the reference scene under extreme and scripted policies, the window anywhere "
        "in both tasks' reset ranges and the sash at any opening "
        "(tests/envs/metaworld/test_metaworld_models.py)",
    ),
    _CONTACT_CAP_CHANGE,
    _SOLVER_CHANGE,
)

MJX_CHANGES["sawyer_door_pull.xml"] = (
    MjxChange(
        target="door_link/5..8 (the door handle's disc, shaft and grip: cylinders)",
        change="16-sided convex prisms inscribed in the cylinders, a vertex on each of the "
        "geom's x and y axes (PRISM_CYLINDERS)",
        reason="MJX has no cylinder-box or cylinder-mesh collision, and the handle meets the "
        "fingers (boxes) and the gripper base (mesh). The grip lies along world x, so its "
        "prisms have vertices straight above, below, in front of and behind its axis, where "
        "the fingers and the gripper base push it; the shaft's are beside and above its axis",
    ),
    _GRIPPER_BASE_HULL_CHANGE,
    _FINGER_MARGIN_CHANGE,
    MjxChange(
        target="contact pairs",
        change="MuJoCo's contype/conaffinity filtering (139 candidates) -> the 53 explicit "
        "pairs in CONTACT_PAIRS",
        reason="the dropped candidates cannot touch: the door and the gripper against the "
        "floor 0.9 m below, the table (the door hangs 2.7 cm above it) and the retaining walls "
        "(out of reach); the door against the safe's right side, top, bottom and back (the "
        "hinge swings it out of the safe; shut, it rests on the hinge side only); the gripper "
        "base against the table (mocap floor), the safe's bottom (under the fingers) and its "
        "back plate (inside the safe). Checked in native MuJoCo on the reference scene under "
        "extreme and scripted policies, the safe anywhere in its reset range and the door at "
        "any angle (tests/envs/metaworld/test_metaworld_models.py)",
    ),
    _SOLVER_CHANGE,
)

MJX_CHANGES["sawyer_peg_insertion_side.xml"] = (
    _GRIPPER_BASE_HULL_CHANGE,
    _FINGER_MARGIN_CHANGE,
    MjxChange(
        target="contact pairs",
        change="MuJoCo's contype/conaffinity filtering (87 candidates) -> the 52 explicit "
        "pairs in CONTACT_PAIRS",
        reason="the dropped candidates cannot touch: the peg, the gripper and the gripper "
        "base against the floor 0.9 m below and the retaining walls (out of reach, the peg "
        "held by the hand included); the two fingers against each other (their joint ranges "
        "keep them apart); the gripper base against the table (mocap floor). Checked in native "
        "MuJoCo on the reference scene under extreme and scripted policies, the block anywhere "
        "in its reset range and the peg on the table or at the hole "
        "(tests/envs/metaworld/test_metaworld_models.py)",
    ),
    _SOLVER_CHANGE,
)

PORTED_TASKS: tuple[str, ...] = tuple(t for t, scene in MT10_SCENES.items() if scene in MJX_CHANGES)


def geom_names(model: mujoco.MjModel) -> list[str]:
    """The name of each geom: its own, or "<body>/<k>" (k-th geom of the body) when unnamed."""
    names = []
    for g in range(model.ngeom):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)
        if not name:
            body = model.geom_bodyid[g]
            body_name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
            name = f"{body_name}/{g - model.body_geomadr[body]}"
        names.append(name)
    return names


def mixed_contact_params(model: mujoco.MjModel, g1: int, g2: int) -> dict[str, object]:
    """The contact parameters MuJoCo's `mj_contactParam` gives a geom pair (equal priorities).

    An explicit <pair> with these parameters behaves exactly as the pair does under MuJoCo's own
    filtering (checked in tests/envs/metaworld/test_metaworld_models.py).
    """
    if model.geom_priority[g1] != model.geom_priority[g2]:
        raise NotImplementedError("geoms of different priority")
    s1, s2 = float(model.geom_solmix[g1]), float(model.geom_solmix[g2])
    eps = mujoco.mjMINVAL
    if s1 >= eps and s2 >= eps:
        mix = s1 / (s1 + s2)
    elif s1 < eps and s2 < eps:
        mix = 0.5
    else:
        mix = 0.0 if s1 < eps else 1.0
    r1, r2 = model.geom_solref[g1], model.geom_solref[g2]
    # standard (positive) solrefs are mixed; a direct (negative) one takes the element-wise min
    solref = mix * r1 + (1 - mix) * r2 if r1[0] > 0 and r2[0] > 0 else np.minimum(r1, r2)
    solimp = mix * model.geom_solimp[g1] + (1 - mix) * model.geom_solimp[g2]
    f = np.maximum(model.geom_friction[g1], model.geom_friction[g2])
    return {
        "condim": int(max(model.geom_condim[g1], model.geom_condim[g2])),
        "solref": [float(x) for x in solref],
        "solimp": [float(x) for x in solimp],
        "friction": [float(f[0]), float(f[0]), float(f[1]), float(f[2]), float(f[2])],
        "margin": float(max(model.geom_margin[g1], model.geom_margin[g2])),
        "gap": float(max(model.geom_gap[g1], model.geom_gap[g2])),
    }


def _prism_vertices(
    radius: float, half_height: float, sides: int, inscribed: bool = False
) -> np.ndarray:
    """A regular `sides`-gon prism centred at the origin, a vertex on the x axis: with the area
    of a disc of `radius`, or `inscribed` in the circle of `radius`."""
    circumradius = (
        radius
        if inscribed
        else radius * math.sqrt(2 * math.pi / (sides * math.sin(2 * math.pi / sides)))
    )
    angle = np.arange(sides) * 2 * math.pi / sides
    ring = np.stack([circumradius * np.cos(angle), circumradius * np.sin(angle)], axis=-1)
    top = np.concatenate([ring, np.full((sides, 1), half_height)], axis=1)
    bottom = np.concatenate([ring, np.full((sides, 1), -half_height)], axis=1)
    return np.concatenate([top, bottom])


def _with_explicit_pairs(
    spec: mujoco.MjSpec,
    reference: mujoco.MjModel,
    pairs: tuple[tuple[str, str], ...],
    margin_in_size: tuple[str, ...] = (),
) -> None:
    """Turn off MuJoCo's filtering and add `pairs` with the reference's mixed parameters.

    Pairs with a geom of `margin_in_size` get margin 0 (MJX drops margins for mesh, box-box and
    capsule-box pairs): the caller has grown that geom by the margin instead.
    """
    names = geom_names(reference)
    index = {name: g for g, name in enumerate(names)}
    for g, geom in enumerate(spec.geoms):
        if not geom.name:
            geom.name = names[g]
        geom.contype = 0
        geom.conaffinity = 0
    for name1, name2 in pairs:
        for name in (name1, name2):
            if name not in index:
                raise ValueError(f"contact pair names unknown geom {name!r}")
            g = index[name]
            if not (reference.geom_contype[g] or reference.geom_conaffinity[g]):
                raise ValueError(
                    f"contact pair names {name!r}, which does not collide in the scene"
                )
        pair = spec.add_pair()
        pair.geomname1, pair.geomname2 = name1, name2
        params = mixed_contact_params(reference, index[name1], index[name2])
        if set(margin_in_size) & {name1, name2}:
            params["margin"] = 0.0
        for key, value in params.items():
            setattr(pair, key, value)


def compile_with_pairs(task: str, pairs: tuple[tuple[str, str], ...]) -> mujoco.MjModel:
    """The reference scene with MuJoCo's filtering replaced by explicit `pairs` (nothing else)."""
    reference = load_reference_model(task)
    spec = mujoco.MjSpec.from_file(str(scene_path(task)))
    _with_explicit_pairs(spec, reference, pairs)
    model = spec.compile()
    _set_mocap_weld(model)
    return model


def default_contact_pairs(model: mujoco.MjModel) -> tuple[tuple[str, str], ...]:
    """Every candidate geom pair of MuJoCo's own filtering, by name (as MJX enumerates them)."""
    from mujoco.mjx._src import collision_driver

    names = geom_names(model)
    return tuple((names[g1], names[g2]) for g1, g2, _ in collision_driver.geom_pairs(model))


@cache
def _mjx_model_cached(scene: str, task: str) -> mujoco.MjModel:
    reference = load_reference_model(task)
    names = geom_names(reference)
    spec = mujoco.MjSpec.from_file(str(scene_path(task)))
    for mesh in spec.meshes:
        if mesh.name in HULL_VERTICES.get(scene, {}):
            mesh.maxhullvert = HULL_VERTICES[scene][mesh.name]
    puck_margin = 0.0
    has_puck = "objGeom" in names and (
        reference.geom_type[names.index("objGeom")] == mujoco.mjtGeom.mjGEOM_CYLINDER
    )
    if has_puck:
        puck = names.index("objGeom")
        # The largest margin of a geom that touches the puck (the finger pads' 1 mm).
        puck_margin = max(
            float(reference.geom_margin[names.index(other)])
            for pair in CONTACT_PAIRS[scene]
            if "objGeom" in pair
            for other in pair
            if other != "objGeom"
        )
        geom = spec.geoms[puck]
        radius, half_height = float(geom.size[0]), float(geom.size[1])
        vertices = _prism_vertices(radius + puck_margin, half_height, PRISM_SIDES)
        _as_mesh(spec, geom, "objGeom_prism", vertices)
    for name in PRISM_CYLINDERS.get(scene, ()):
        g = names.index(name)
        if reference.geom_type[g] != mujoco.mjtGeom.mjGEOM_CYLINDER:
            raise AssertionError(f"{name}: only cylinders become prisms")
        radius, half_height = float(reference.geom_size[g, 0]), float(reference.geom_size[g, 1])
        vertices = _prism_vertices(radius, half_height, PRISM_SIDES, inscribed=True)
        _as_mesh(spec, spec.geoms[g], f"{name}_prism", vertices)
        _keep_inertial(spec, reference, int(reference.geom_bodyid[g]))
    grown = MARGIN_IN_SIZE.get(scene, ())
    for name in grown:
        # MJX's box-box and capsule-box functions return no contact for separated geoms, so a
        # margin is lost; the box grows by it instead (its body keeps the reference inertia).
        g = names.index(name)
        if reference.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX:
            raise AssertionError(f"{name}: only boxes take their margin into their size")
        spec.geoms[g].size = reference.geom_size[g] + reference.geom_margin[g]
        _keep_inertial(spec, reference, int(reference.geom_bodyid[g]))
    _with_explicit_pairs(
        spec,
        reference,
        CONTACT_PAIRS[scene],
        margin_in_size=(("objGeom",) if has_puck else ()) + grown,
    )
    spec.option.iterations = SOLVER_ITERATIONS
    if scene in MAX_CONTACT_POINTS:
        spec.add_numeric(name="max_contact_points", data=[MAX_CONTACT_POINTS[scene]])
    spec.option.ls_iterations = SOLVER_LS_ITERATIONS
    model = spec.compile()
    _set_mocap_weld(model)
    check_same_dynamics(reference, model)
    return model


def _as_mesh(spec: mujoco.MjSpec, geom: mujoco.MjsGeom, name: str, vertices: np.ndarray) -> None:
    """Make `geom` a mesh geom on a new mesh `name` with `vertices` (its convex hull)."""
    mesh = spec.add_mesh()
    mesh.name = name
    mesh.uservert = vertices.ravel()
    geom.type = mujoco.mjtGeom.mjGEOM_MESH
    geom.meshname = mesh.name


def _keep_inertial(spec: mujoco.MjSpec, reference: mujoco.MjModel, body: int) -> None:
    """Give a body the reference's inertial explicitly (so changed geoms cannot move it)."""
    b = spec.bodies[body]
    b.explicitinertial = True
    b.mass = float(reference.body_mass[body])
    b.ipos = reference.body_ipos[body]
    b.iquat = reference.body_iquat[body]
    b.inertia = reference.body_inertia[body]


def load_mjx_model(task: str) -> mujoco.MjModel:
    """The task's scene with the MJX changes of `MJX_CHANGES` (a fresh copy each call)."""
    task = check_task(task)
    return copy.copy(_mjx_model_cached(MT10_SCENES[task], task))


# Model fields that must be identical between the reference and the MJX scene.
_SAME_FIELDS = [
    "nq",
    "nv",
    "nu",
    "nbody",
    "njnt",
    "nmocap",
    "neq",
    "ngeom",
    "nsite",
    "body_mass",
    "body_inertia",
    "body_ipos",
    "body_iquat",
    "body_pos",
    "body_quat",
    "body_parentid",
    "body_mocapid",
    "body_subtreemass",
    "jnt_type",
    "jnt_range",
    "jnt_limited",
    "jnt_stiffness",
    "jnt_axis",
    "dof_damping",
    "dof_armature",
    "dof_frictionloss",
    "qpos0",
    "actuator_gainprm",
    "actuator_biasprm",
    "actuator_ctrlrange",
    "actuator_trnid",
    "eq_data",
    "eq_solref",
    "eq_solimp",
    "eq_obj1id",
    "eq_obj2id",
    "site_pos",
    "site_bodyid",
    "geom_bodyid",
]


def check_same_dynamics(reference: mujoco.MjModel, model: mujoco.MjModel) -> None:
    """Raise if anything but collision geometry and solver iterations differs from the reference."""
    for field in _SAME_FIELDS:
        a, b = getattr(reference, field), getattr(model, field)
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise AssertionError(f"MJX scene changed {field}: {a} -> {b}")
    for field in (
        "timestep",
        "gravity",
        "cone",
        "solver",
        "integrator",
        "impratio",
        "noslip_iterations",
    ):
        a, b = getattr(reference.opt, field), getattr(model.opt, field)
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise AssertionError(f"MJX scene changed option {field}: {a} -> {b}")
