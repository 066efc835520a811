"""`metaworld.utils.reward_utils` (3.0.0) in JAX: `tolerance`, `hamacher_product`, and
`SawyerXYZEnv._gripper_caging_reward`, branch-free so that they jit and vmap.

The reference raises on invalid arguments (a negative margin, a Hamacher argument outside
[0, 1]); here the arguments come from traced values and are not checked.
"""

from __future__ import annotations

import jax.numpy as jnp

_DEFAULT_VALUE_AT_MARGIN = 0.1


def _sigmoid(x: jnp.ndarray, value_at_1: float, sigmoid: str) -> jnp.ndarray:
    """`reward_utils._sigmoids` for the sigmoids Meta-World's v2 rewards use."""
    if sigmoid == "long_tail":
        scale = (1 / value_at_1 - 1) ** 0.5
        return 1 / ((x * scale) ** 2 + 1)
    if sigmoid == "gaussian":
        scale = (-2 * jnp.log(value_at_1)) ** 0.5
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if sigmoid == "reciprocal":
        scale = 1 / value_at_1 - 1
        return 1 / (jnp.abs(x) * scale + 1)
    if sigmoid == "linear":
        scaled = x * (1 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1, 1 - scaled, 0.0)
    raise NotImplementedError(f"sigmoid {sigmoid!r} is not ported")


def tolerance(
    x: jnp.ndarray,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: jnp.ndarray | float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = _DEFAULT_VALUE_AT_MARGIN,
) -> jnp.ndarray:
    """1 inside `bounds`, falling off with the distance to them over `margin` (0 if margin is 0)."""
    lower, upper = bounds
    if lower > upper:
        raise ValueError("Lower bound must be <= upper bound.")
    x = jnp.asarray(x)
    margin = jnp.asarray(margin, x.dtype)
    in_bounds = (lower <= x) & (x <= upper)
    safe_margin = jnp.where(margin == 0, 1.0, margin)
    d = jnp.where(x < lower, lower - x, x - upper) / safe_margin
    outside = jnp.where(margin == 0, 0.0, _sigmoid(d, value_at_margin, sigmoid))
    return jnp.where(in_bounds, 1.0, outside)


def hamacher_product(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """The Hamacher t-norm a*b / (a + b - a*b), 0 where the denominator is 0."""
    denominator = a + b - a * b
    safe = jnp.where(denominator > 0, denominator, 1.0)
    return jnp.where(denominator > 0, a * b / safe, 0.0)


def gripper_caging_reward(
    action: jnp.ndarray,
    obj_pos: jnp.ndarray,
    obj_init_pos: jnp.ndarray,
    init_tcp: jnp.ndarray,
    tcp: jnp.ndarray,
    left_pad: jnp.ndarray,
    right_pad: jnp.ndarray,
    *,
    obj_radius: float,
    pad_success_thresh: float,
    object_reach_radius: float,
    xz_thresh: float,
    desired_gripper_effort: float = 1.0,
    high_density: bool = False,
    medium_density: bool = False,
) -> jnp.ndarray:
    """`SawyerXYZEnv._gripper_caging_reward`, with the env's state passed in explicitly.

    `left_pad` / `right_pad` are the pads' body positions, `tcp` the current tool centre point,
    `init_tcp` the one after the hand reset, `obj_init_pos` the object's start position.
    """
    if high_density and medium_density:
        raise ValueError("Can only be either high_density or medium_density")
    pad_y_lr = jnp.stack([left_pad[1], right_pad[1]])
    pad_to_obj_lr = jnp.abs(pad_y_lr - obj_pos[1])
    pad_to_objinit_lr = jnp.abs(pad_y_lr - obj_init_pos[1])
    caging_lr_margin = jnp.abs(pad_to_objinit_lr - pad_success_thresh)
    caging_lr = [
        tolerance(
            pad_to_obj_lr[i],
            bounds=(obj_radius, pad_success_thresh),
            margin=caging_lr_margin[i],
            sigmoid="long_tail",
        )
        for i in range(2)
    ]
    caging_y = hamacher_product(*caging_lr)

    xz = jnp.array([0, 2])
    caging_xz_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - xz_thresh
    caging_xz = tolerance(
        jnp.linalg.norm(tcp[xz] - obj_pos[xz]),
        bounds=(0, xz_thresh),
        margin=caging_xz_margin,
        sigmoid="long_tail",
    )

    gripper_closed = (
        jnp.minimum(jnp.maximum(0.0, action[-1]), desired_gripper_effort) / desired_gripper_effort
    )
    caging = hamacher_product(caging_y, caging_xz)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = hamacher_product(caging, gripping)

    if high_density:
        caging_and_gripping = (caging_and_gripping + caging) / 2
    if medium_density:
        tcp_to_obj = jnp.linalg.norm(obj_pos - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj_init_pos - init_tcp)
        reach_margin = jnp.abs(tcp_to_obj_init - object_reach_radius)
        reach = tolerance(
            tcp_to_obj,
            bounds=(0, object_reach_radius),
            margin=reach_margin,
            sigmoid="long_tail",
        )
        caging_and_gripping = (caging_and_gripping + reach) / 2
    return caging_and_gripping


def rect_prism_tolerance(curr: jnp.ndarray, zero: jnp.ndarray, one: jnp.ndarray) -> jnp.ndarray:
    """`reward_utils.rect_prism_tolerance`: inside the box spanned by the corners `zero` and
    `one`, the product over the axes of how far `curr` lies from `zero` towards `one` (0 at
    `zero`'s faces, 1 at `one`); 1 outside the box."""
    low, high = jnp.minimum(zero, one), jnp.maximum(zero, one)
    inside = jnp.all((low <= curr) & (curr <= high))
    diff = one - zero
    scale = jnp.prod((curr - zero) / jnp.where(diff == 0, 1.0, diff))
    return jnp.where(inside, scale, 1.0)
