"""The MJX scenes: read from the installed package, every change listed, dynamics unchanged.

Native MuJoCo only (no MJX compilation), so these are quick."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import mujoco
import numpy as np
import pytest
from mujoco import mjx

from envs.metaworld import models

PORTED_SCENES = sorted({models.MT10_SCENES[t] for t in models.PORTED_TASKS})


def test_ported_tasks_and_change_table() -> None:
    assert models.PORTED_TASKS == (
        "reach-v3",
        "push-v3",
        "pick-place-v3",
        "door-open-v3",
        "drawer-open-v3",
        "drawer-close-v3",
        "button-press-topdown-v3",
        "peg-insert-side-v3",
        "window-open-v3",
        "window-close-v3",
    )
    for scene in PORTED_SCENES:
        changes = models.MJX_CHANGES[scene]
        assert all(c.target and c.change and c.reason for c in changes)
        assert scene in models.CONTACT_PAIRS


@pytest.mark.parametrize("task", models.PORTED_TASKS)
def test_mjx_scene_keeps_masses_inertias_and_joints(task: str) -> None:
    reference = models.load_reference_model(task)
    model = models.load_mjx_model(task)
    for field in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "body_subtreemass"):
        np.testing.assert_array_equal(getattr(model, field), getattr(reference, field))
    models.check_same_dynamics(reference, model)
    assert model.opt.iterations == models.SOLVER_ITERATIONS
    assert model.opt.ls_iterations == models.SOLVER_LS_ITERATIONS
    # the weld as Meta-World sets it at construction
    np.testing.assert_array_equal(model.eq_data[0, :11], models.MOCAP_WELD_DATA)
    # read from the installed package, not from this repository
    assert models.scene_path(task).is_relative_to(models.metaworld_dir())


def _hull_vertices(model: mujoco.MjModel, mesh: str) -> int:
    mesh_id = model.mesh(mesh).id
    return int(model.mesh_graph[model.mesh_graphadr[mesh_id]])


@pytest.mark.parametrize("task", models.PORTED_TASKS)
def test_mjx_loads_the_changed_scene_but_not_the_reference(task: str) -> None:
    model = models.load_mjx_model(task)
    mjx.put_model(model)
    reference = models.load_reference_model(task)
    if models.MT10_SCENES[task] == "sawyer_drawer.xml":
        # MJX loads the reference drawer scene, but its gripper-base hull is out of reach
        assert _hull_vertices(reference, "eGripperBase") == 883
        assert _hull_vertices(model, "eGripperBase") == 32
        assert model.npair == 59 and len(models.default_contact_pairs(reference)) == 187
    elif models.MT10_SCENES[task] == "sawyer_peg_insertion_side.xml":  # the same, all boxes
        assert _hull_vertices(reference, "eGripperBase") == 883
        assert _hull_vertices(model, "eGripperBase") == 32
        assert model.npair == 52 and len(models.default_contact_pairs(reference)) == 87
    else:
        with pytest.raises(NotImplementedError, match="CYLINDER"):
            mjx.put_model(reference)
    if models.MT10_SCENES[task] == "sawyer_button_press_topdown.xml":
        assert _hull_vertices(model, "eGripperBase") == 32
        assert model.npair == 45 and len(models.default_contact_pairs(reference)) == 99
    if models.MT10_SCENES[task] == "sawyer_window_horizontal.xml":
        assert _hull_vertices(model, "eGripperBase") == 32
        assert model.npair == 120 and len(models.default_contact_pairs(reference)) == 331
    if models.MT10_SCENES[task] == "sawyer_door_pull.xml":
        assert _hull_vertices(model, "eGripperBase") == 32
        assert model.npair == 53 and len(models.default_contact_pairs(reference)) == 139


@pytest.mark.parametrize("scene", sorted(models.PRISM_CYLINDERS))
def test_cylinder_prisms_are_inscribed_with_vertices_on_the_geom_axes(scene: str) -> None:
    """The cylinders made 16-gon prisms (the button's rod, collar and cap; the window handle's
    discs): in the geom's frame the same centre and height, the full radius along the geom's x
    and y axes (the button hole's walls, the window's slide axis), every vertex on the circle."""
    task = next(t for t in models.PORTED_TASKS if models.MT10_SCENES[t] == scene)
    reference, model = models.load_reference_model(task), models.load_mjx_model(task)
    ref_data, data = mujoco.MjData(reference), mujoco.MjData(model)
    mujoco.mj_forward(reference, ref_data)
    mujoco.mj_forward(model, data)
    names = models.geom_names(model)
    for name in models.PRISM_CYLINDERS[scene]:
        g = names.index(name)
        assert reference.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER
        radius, half_height = reference.geom_size[g, :2]
        assert model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH
        mesh = model.geom_dataid[g]
        start = model.mesh_vertadr[mesh]
        vertices = model.mesh_vert[start : start + model.mesh_vertnum[mesh]]
        world = vertices @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g]
        np.testing.assert_allclose(data.geom_xpos[g], ref_data.geom_xpos[g], atol=1e-9)
        # in the reference geom's frame
        local = (world - ref_data.geom_xpos[g]) @ ref_data.geom_xmat[g].reshape(3, 3)
        np.testing.assert_allclose(local.max(axis=0), [radius, radius, half_height], rtol=1e-6)
        np.testing.assert_allclose(-local.min(axis=0), [radius, radius, half_height], rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(local[:, :2], axis=1), radius, rtol=1e-6)


def _scripted_push(model: mujoco.MjModel, steps: int) -> np.ndarray:
    """Native rollout: hand reset, then push the puck forwards with the fingers closing."""
    data = mujoco.MjData(model)
    for _ in range(50):
        data.mocap_pos[0], data.mocap_quat[0], data.ctrl[:] = (0, 0.6, 0.2), (1, 0, 1, 0), (-1, 1)
        mujoco.mj_step(model, data, 5)
    data.qpos[9:12] = (0.0, 0.65, 0.02)
    mujoco.mj_forward(model, data)
    out = []
    for t in range(steps):
        hand, obj = data.xpos[model.body("hand").id], data.xpos[model.body("obj").id]
        target = obj + ((0, -0.03, 0.0) if t < 60 else (0, 0.2, 0.0))
        move = np.clip((target - hand) * 20, -1, 1) / 100
        data.mocap_pos[0] = np.clip(data.mocap_pos[0] + move, (-0.5, 0.4, 0.05), (0.5, 1, 0.5))
        data.ctrl[:] = (1, -1) if t > 30 else (-1, 1)
        mujoco.mj_step(model, data, 5)
        out.append(data.qpos.copy())
    return np.array(out)


def test_explicit_pairs_reproduce_mujocos_own_filtering_exactly() -> None:
    """<pair>s with `mixed_contact_params` for every default candidate: same trajectory, bit
    for bit, through contact (so the kept pairs carry MuJoCo's own contact parameters)."""
    reference = models.load_reference_model("push-v3")
    explicit = models.compile_with_pairs("push-v3", models.default_contact_pairs(reference))
    assert explicit.npair == len(models.default_contact_pairs(reference))
    a, b = _scripted_push(reference, 120), _scripted_push(explicit, 120)
    assert np.abs(a[-1, 9:12] - a[0, 9:12]).max() > 0.05  # the puck was pushed
    np.testing.assert_array_equal(a, b)


def _scan_contacts(task: str, episodes: int, seed: int, steps: int, place, target) -> set:
    """Every geom pair in contact in the reference scene when, after the hand reset, `place`
    puts the objects somewhere (rng, model, data) and the hand is driven towards
    `target(episode, t, rng, model, data, corner)` with noise, fingers open or closed, where
    `corner` is a random corner of the mocap box."""
    model = models.load_reference_model(task)
    names = models.geom_names(model)
    low, high = np.array([-0.5, 0.4, 0.05]), np.array([0.5, 1.0, 0.5])
    rng = np.random.default_rng(seed)
    seen = set()
    for episode in range(episodes):
        data = mujoco.MjData(model)
        for _ in range(50):
            data.mocap_pos[0], data.mocap_quat[0] = (0, 0.6, 0.2), (1, 0, 1, 0)
            data.ctrl[:] = (-1, 1)
            mujoco.mj_step(model, data, 5)
        place(rng, model, data)
        mujoco.mj_forward(model, data)
        corner = np.where(rng.random(3) < 0.5, low, high)
        grip = 1.0 if episode % 2 else -1.0
        for t in range(steps):
            hand = data.xpos[model.body("hand").id]
            goal = target(episode, t, rng, model, data, corner)
            move = np.clip((goal - hand) * 30 + rng.normal(0, 0.3, 3), -1, 1) / 100
            data.mocap_pos[0] = np.clip(data.mocap_pos[0] + move, low, high)
            data.ctrl[:] = (grip, -grip)
            mujoco.mj_step(model, data, 5)
            for c in data.contact[: data.ncon]:
                seen.add(tuple(sorted((names[c.geom1], names[c.geom2]))))
    return seen


def _contacts_under_extreme_policies(task: str, episodes: int, seed: int) -> set[tuple[str, str]]:
    """The puck scenes: the hand driven into the corners of the mocap box, onto the table and
    through the puck."""

    def place(rng, model, data):
        data.qpos[9:12] = (rng.uniform(-0.1, 0.1), rng.uniform(0.6, 0.7), 0.02)

    def target(episode, t, rng, model, data, corner):
        obj = data.xpos[model.body("obj").id]
        return corner if episode % 3 == 0 else obj + np.array([0, 0.3 * (t > 40) - 0.03, -0.05])

    return _scan_contacts(task, episodes, seed, 120, place, target)


def _contacts_under_extreme_drawer_policies(episodes: int, seed: int) -> set[tuple[str, str]]:
    """The drawer scene, the case anywhere in its reset range and the drawer at any opening:
    the hand driven into the mocap box's corners, down and through the handle, over and into
    the open drawer, behind and beside the case and onto its top."""

    def place(rng, model, data):
        model.body("drawer").pos = (rng.uniform(-0.1, 0.1), 0.9, 0.0)
        data.qpos[9] = rng.uniform(-0.16, 0.0)

    def target(episode, t, rng, model, data, corner):
        handle = data.xpos[model.body("drawer_link").id] + np.array([0, -0.16, 0.0])
        side = 0.3 if episode % 12 < 6 else -0.3
        return [  # all evaluated, so each step draws the same random numbers
            corner,
            handle + np.array([0, 0.05 * (t > 60) - 0.02, -0.1]),
            handle + np.array([rng.uniform(-0.15, 0.15), 0.1, -0.1 + 0.2 * (t > 70)]),
            np.array([handle[0] + rng.uniform(-0.2, 0.2), 1.0, 0.0]),
            np.array([handle[0] + side * (1 - t / 150), 0.9 + rng.uniform(-0.08, 0.08), 0.05]),
            np.array([handle[0], 0.95, 0.3 - 0.4 * t / 150]),
        ][episode % 6]

    return _scan_contacts("drawer-open-v3", episodes, seed, 150, place, target)


def _contacts_under_extreme_button_policies(episodes: int, seed: int) -> set[tuple[str, str]]:
    """The button scene, the box anywhere in its reset range and the button at any depth: the
    hand driven into the mocap box's corners, down onto and around the cap, down onto the box
    from anywhere above it, beside it low, behind it, and across the front of the cap."""

    def place(rng, model, data):
        model.body("box").pos = (rng.uniform(-0.1, 0.1), rng.uniform(0.8, 0.9), 0.115)
        data.qpos[9] = rng.uniform(-0.06, 0.0)

    def target(episode, t, rng, model, data, corner):
        cap = data.site_xpos[model.site("buttonStart").id]
        box = model.body("box").pos
        side = 0.3 if episode % 12 < 6 else -0.3
        return [  # all evaluated, so each step draws the same random numbers
            corner,
            cap + np.array([*rng.uniform(-0.03, 0.03, 2), 0.1 - 0.25 * t / 150]),
            box + np.array([*rng.uniform(-0.15, 0.15, 2), 0.235 - 0.35 * t / 150]),
            np.array([box[0] + side * (1 - t / 150), box[1] + rng.uniform(-0.1, 0.1), 0.05]),
            np.array([box[0], 1.0, 0.3 - 0.3 * t / 150]),
            np.array([box[0] + rng.uniform(-0.06, 0.06), box[1] - 0.15 + 0.1 * t / 150, 0.12]),
        ][episode % 6]

    return _scan_contacts("button-press-topdown-v3", episodes, seed, 150, place, target)


def _contacts_under_extreme_window_policies(episodes: int, seed: int) -> set[tuple[str, str]]:
    """The window scene, the window anywhere in window-open's or window-close's reset range and
    the sash at any opening: the hand driven into the mocap box's corners, along the handle
    both ways (as the scripted policies push it, with random offsets), into the frame from in
    front, down behind the window, along its sides, down in front of it, low across its
    bottom, and across it from behind."""

    def place(rng, model, data):
        if rng.random() < 0.5:  # window-open's reset range, then window-close's
            model.body("window").pos = (rng.uniform(-0.1, 0.1), rng.uniform(0.7, 0.9), 0.16)
        else:
            model.body("window").pos = (0.0, rng.uniform(0.75, 0.9), 0.2)
        data.qpos[9] = rng.uniform(0.0, 0.2)

    def target(episode, t, rng, model, data, corner):
        handle = data.site_xpos[model.site("handleOpenStart").id]
        window = model.body("window").pos
        side = 0.35 if episode % 18 < 9 else -0.35
        offset = np.array([0.0, -0.03 + rng.uniform(-0.03, 0.03), -0.08 + rng.uniform(-0.06, 0.06)])
        return [  # all evaluated, so each step draws the same random numbers
            corner,
            handle + offset + np.array([-0.03 + 0.3 * (t > 50), 0.0, 0.0]),
            handle + offset + np.array([0.03 - 0.3 * (t > 50), 0.0, 0.0]),
            np.array([window[0] + rng.uniform(-0.3, 0.3), window[1] + 0.1, rng.uniform(0.05, 0.4)]),
            np.array([window[0] + rng.uniform(-0.25, 0.25), 1.0, 0.5 - 0.45 * t / 150]),
            np.array(
                [
                    window[0] + side * (1 - t / 150),
                    window[1] + rng.uniform(-0.1, 0.1),
                    0.05 + rng.uniform(0, 0.25),
                ]
            ),
            np.array([window[0] + rng.uniform(-0.3, 0.3), window[1] - 0.05, 0.5 - 0.45 * t / 150]),
            np.array(
                [
                    window[0] + side * (1 - 2 * t / 150),
                    window[1] - 0.02 + rng.uniform(-0.03, 0.03),
                    0.05,
                ]
            ),
            np.array(
                [window[0] + side * (1 - 2 * t / 150), window[1] + 0.15, rng.uniform(0.05, 0.5)]
            ),
        ][episode % 9]

    return _scan_contacts("window-open-v3", episodes, seed, 150, place, target)


def _contacts_under_extreme_door_policies(episodes: int, seed: int) -> set[tuple[str, str]]:
    """The door scene, the safe anywhere in its reset range and the door shut or at any angle:
    the hand driven into the mocap box's corners, onto the handle's grip and along it as the
    scripted policy pushes it (with random offsets), through the space around the handle, into
    the safe's opening and the door from in front, down behind the safe, low along its sides,
    down in front of it, across the swept space of the opening door, and down onto its top."""

    def place(rng, model, data):
        model.body("door").pos = (rng.uniform(0.0, 0.1), rng.uniform(0.85, 0.95), 0.15)
        data.qpos[9] = rng.uniform(-2.0, 0.0) if rng.random() < 0.7 else 0.0

    def target(episode, t, rng, model, data, corner):
        handle = data.geom_xpos[model.geom("handle").id]
        door = model.body("door").pos
        side = 0.35 if episode % 18 < 9 else -0.35
        offset = np.array([*rng.uniform(-0.04, 0.04, 2), rng.uniform(-0.05, 0.03)])
        return [  # all evaluated, so each step draws the same random numbers
            corner,
            handle + offset + np.array([0.01 - 0.06 * (t > 50), 0.02 - 0.1 * (t > 90), 0.0]),
            handle + np.array([*rng.uniform(-0.1, 0.1, 2), rng.uniform(-0.08, 0.08)]),
            np.array(
                [
                    door[0] + rng.uniform(-0.3, 0.3),
                    door[1] + rng.uniform(-0.05, 0.1),
                    rng.uniform(0.05, 0.4),
                ]
            ),
            np.array([door[0] + rng.uniform(-0.3, 0.3), 1.0, 0.5 - 0.45 * t / 150]),
            np.array(
                [
                    door[0] + side * (1 - t / 150),
                    door[1] + rng.uniform(-0.12, 0.12),
                    0.05 + rng.uniform(0, 0.25),
                ]
            ),
            np.array([door[0] + rng.uniform(-0.3, 0.3), door[1] - 0.2, 0.5 - 0.45 * t / 150]),
            np.array(
                [
                    door[0] + side * (1 - 2 * t / 150),
                    door[1] - rng.uniform(0.1, 0.4),
                    rng.uniform(0.05, 0.3),
                ]
            ),
            np.array(
                [
                    door[0] + rng.uniform(-0.2, 0.2),
                    door[1] + rng.uniform(-0.1, 0.1),
                    0.5 - 0.45 * t / 150,
                ]
            ),
        ][episode % 9]

    return _scan_contacts("door-open-v3", episodes, seed, 150, place, target)


def _contacts_under_extreme_peg_policies(episodes: int, seed: int) -> set[tuple[str, str]]:
    """The peg scene, the block anywhere in its reset range, the peg on the table in its range or
    at the hole (in it, or just out of it): the hand driven into the mocap box's corners, down
    onto the peg and up again (grasping in odd episodes), along the hole towards the block,
    down onto the block from anywhere above it, low along it in x and in y, and low around the
    peg."""

    def place(rng, model, data):
        model.body("box").pos = (rng.uniform(-0.35, -0.25), rng.uniform(0.4, 0.7), 0.0)
        box = model.body("box").pos
        if rng.random() < 0.3:  # the peg at the hole
            x = box[0] + 0.03 + rng.uniform(0.0, 0.2)
            data.qpos[9:12] = (x, box[1] + rng.uniform(-0.01, 0.01), 0.13)
        else:
            data.qpos[9:12] = (rng.uniform(0.0, 0.2), rng.uniform(0.5, 0.7), 0.02)
        data.qvel[9:15] = 0

    def target(episode, t, rng, model, data, corner):
        peg = data.site_xpos[model.site("pegGrasp").id]
        hole = data.site_xpos[model.site("hole").id]
        box = model.body("box").pos
        side = 0.3 if episode % 14 < 7 else -0.3
        return [  # all evaluated, so each step draws the same random numbers
            corner,
            peg + np.array([*rng.uniform(-0.03, 0.03, 2), -0.05 + 0.3 * (t > 60)]),
            hole
            + np.array(
                [0.05 + 0.15 * (1 - t / 150), rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.05)]
            ),
            np.array(
                [
                    box[0] + rng.uniform(-0.15, 0.15),
                    box[1] + rng.uniform(-0.15, 0.15),
                    0.5 - 0.45 * t / 150,
                ]
            ),
            np.array(
                [
                    box[0] + side * (1 - t / 150),
                    box[1] + rng.uniform(-0.15, 0.15),
                    0.05 + rng.uniform(0, 0.2),
                ]
            ),
            np.array(
                [
                    box[0] + rng.uniform(-0.15, 0.15),
                    box[1] + side * (1 - t / 150),
                    0.05 + rng.uniform(0, 0.2),
                ]
            ),
            np.array([peg[0] + rng.uniform(-0.15, 0.15), peg[1] + rng.uniform(-0.15, 0.15), 0.05]),
        ][episode % 7]

    return _scan_contacts("peg-insert-side-v3", episodes, seed, 150, place, target)


def _contacts_under_scripted_policy(task: str, episodes: int, seed: int) -> dict:
    """Contact steps per geom pair in the reference env under Meta-World's scripted policy with
    action noise (0.1, and 0.5 on every other episode), 150 steps each (it lifts the puck)."""
    from metaworld.policies import ENV_POLICY_MAP

    from envs.metaworld.reference import make_reference, reference_rand_vecs

    counts: dict[tuple[str, str], int] = {}
    for episode, vec in enumerate(reference_rand_vecs(task, episodes, seed=seed)):
        env = make_reference(task, vec)
        names = models.geom_names(env.model)
        policy = ENV_POLICY_MAP[task]()
        rng = np.random.default_rng(seed + episode)
        noise = 0.5 if episode % 2 else 0.1
        obs, _ = env.reset()
        for _ in range(150):
            action = np.clip(policy.get_action(obs) + rng.normal(0, noise, 4), -1, 1)
            obs, *_ = env.step(action.astype(np.float32))
            for c in env.data.contact[: env.data.ncon]:
                pair = tuple(sorted((names[c.geom1], names[c.geom2])))
                counts[pair] = counts.get(pair, 0) + 1
        env.close()
    return counts


def test_dropped_drawer_pairs_never_touch() -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS["sawyer_drawer.xml"]}
    seen = _contacts_under_extreme_drawer_policies(episodes=48, seed=1)
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    # the scan does see contacts: the drawer at rest, the handle, the case from above and beside
    assert {
        ("RetainingWall/1", "drawer_link/3"),
        ("drawer_link/8", "leftpad_geom"),
        ("drawercase_link/5", "right_hand/0"),
        ("drawercase_link/1", "leftclaw_it"),
    } <= seen
    for task in ("drawer-open-v3", "drawer-close-v3"):
        scripted = _contacts_under_scripted_policy(task, episodes=4, seed=0)
        assert set(scripted) <= kept, f"{task}: contacts outside the kept pairs"
        assert scripted[("drawer_link/8", "leftpad_geom")] > 100  # the policy works the handle


def test_dropped_button_pairs_never_touch() -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS["sawyer_button_press_topdown.xml"]}
    seen = _contacts_under_extreme_button_policies(episodes=48, seed=1)
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    # the scan does see contacts: the cap pressed, the box from above, the fingers on the rod
    assert {
        ("button/4", "leftpad_geom"),
        ("button/3", "buttonbox/3"),
        ("buttonbox/4", "right_hand/0"),
        ("button/2", "leftclaw_it"),
    } <= seen
    scripted = _contacts_under_scripted_policy("button-press-topdown-v3", episodes=4, seed=0)
    assert set(scripted) <= kept, f"contacts outside the kept pairs: {set(scripted) - kept}"
    assert scripted[("button/4", "buttonbox/3")] > 100  # the policy presses the button home


def test_dropped_window_pairs_never_touch() -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS["sawyer_window_horizontal.xml"]}
    seen = set().union(*(_contacts_under_extreme_window_policies(90, seed) for seed in range(4)))
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    # the scan does see contacts: the sash at both stops, the handle, the glass, the pane
    # behind, the base plate (window-close's window stands 4 cm higher)
    assert {
        ("None/4", "windowb_a/12"),
        ("None/2", "windowb_a/13"),
        ("None/4", "windowb_a/8"),
        ("right_hand/0", "windowb_a/11"),
        ("leftpad_geom", "windowb_a/16"),
        ("right_hand/0", "windowb_b/7"),
        ("None/3", "leftclaw_it"),
    } <= seen
    for task in ("window-open-v3", "window-close-v3"):
        scripted = _contacts_under_scripted_policy(task, episodes=4, seed=0)
        assert set(scripted) <= kept, f"{task}: contacts outside the kept pairs"
        assert scripted[("right_hand/0", "windowb_a/11")] > 100  # the policy pushes the handle


def test_dropped_door_pairs_never_touch() -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS["sawyer_door_pull.xml"]}
    seen = set().union(*(_contacts_under_extreme_door_policies(90, seed) for seed in range(4)))
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    # the scan does see contacts: the shut door on the hinge side, the grip, the shaft, the
    # panel, the safe's top from above and its bottom
    assert {
        ("door_link/9", "doorlockB/1"),
        ("door_link/8", "rightpad_geom"),
        ("door_link/6", "right_hand/0"),
        ("door_link/9", "leftclaw_it"),
        ("doorlockB/3", "right_hand/0"),
        ("doorlockB/4", "leftpad_geom"),
    } <= seen
    scripted = _contacts_under_scripted_policy("door-open-v3", episodes=4, seed=0)
    assert set(scripted) <= kept, f"contacts outside the kept pairs: {set(scripted) - kept}"
    assert scripted[("door_link/8", "rightpad_geom")] > 100  # the policy pulls the grip


def test_dropped_peg_pairs_never_touch() -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS["sawyer_peg_insertion_side.xml"]}
    seen = set().union(*(_contacts_under_extreme_peg_policies(70, seed) for seed in range(4)))
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    # the scan does see contacts: the peg in the hole, on the table, against the gripper base;
    # the block's top and side plates from above and beside
    assert {
        ("None/3", "peg"),
        ("None/5", "peg"),
        ("peg", "tablelink/2"),
        ("peg", "right_hand/0"),
        ("None/2", "right_hand/0"),
        ("None/7", "leftpad_geom"),
    } <= seen
    scripted = _contacts_under_scripted_policy("peg-insert-side-v3", episodes=4, seed=0)
    assert set(scripted) <= kept, f"contacts outside the kept pairs: {set(scripted) - kept}"
    assert scripted[("leftpad_geom", "peg")] > 100  # the policy grasps the peg


PUCK_TASKS = ("reach-v3", "push-v3", "pick-place-v3")


@pytest.mark.parametrize("task", PUCK_TASKS)
def test_dropped_pairs_never_touch(task: str) -> None:
    kept = {tuple(sorted(p)) for p in models.CONTACT_PAIRS[models.MT10_SCENES[task]]}
    seen = _contacts_under_extreme_policies(task, episodes=36, seed=0)
    assert seen <= kept, f"contacts outside the kept pairs: {seen - kept}"
    assert ("objGeom", "tablelink/2") in seen  # the scan does see contacts
    if task == "pick-place-v3":
        # the puck grasped and carried: it stays between the pads and claws
        scripted = _contacts_under_scripted_policy(task, episodes=6, seed=0)
        assert set(scripted) <= kept, f"contacts outside the kept pairs: {set(scripted) - kept}"
        assert scripted[("leftpad_geom", "objGeom")] > 100  # the scan does grasp
        assert scripted[("objGeom", "rightpad_geom")] > 100


def test_unknown_task_lists_the_mt10_names() -> None:
    with pytest.raises(ValueError, match=r"task must be one of \['reach-v3', 'push-v3'"):
        models.check_task("reach-v2")
    with pytest.raises(TypeError, match="task name must be a str"):
        models.check_task(3)


def test_missing_or_unsupported_metaworld(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "metaworld" else real_find_spec(name, *a),
    )
    with pytest.raises(models.MetaWorldUnavailableError, match="not installed"):
        models.load_reference_model("reach-v3")
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.1.1")
    with pytest.raises(models.MetaWorldUnavailableError, match=r"metaworld 3\.1\.1 is installed"):
        models.scene_path("push-v3")
