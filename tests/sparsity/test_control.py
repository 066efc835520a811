"""cond_any: a cond whose batched form branches once on 'any example's predicate holds'."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsity.control import cond_any


def _true(x):
    return jnp.sort(x) * 2.0


def _false(x):
    return x + 1.0


def test_cond_any_matches_lax_cond_unbatched_and_per_example_under_vmap():
    x = jnp.array([[3.0, 1.0, 2.0], [5.0, 4.0, 6.0], [0.0, 9.0, 8.0]])
    for p in (True, False):
        np.testing.assert_array_equal(
            cond_any(jnp.bool_(p), _true, _false, x[0]), jax.lax.cond(p, _true, _false, x[0])
        )
    for preds in ([True, False, True], [False, False, False], [True, True, True]):
        preds = jnp.array(preds)
        got = jax.jit(jax.vmap(lambda p, v: cond_any(p, _true, _false, v)))(preds, x)
        want = jax.vmap(lambda p, v: jax.lax.cond(p, _true, _false, v))(preds, x)
        np.testing.assert_array_equal(got, want)
    # unbatched predicate, batched operands; and batched predicate, unbatched operands
    got = jax.vmap(lambda v: cond_any(jnp.bool_(True), _true, _false, v))(x)
    np.testing.assert_array_equal(got, jax.vmap(_true)(x))
    got = jax.vmap(lambda p: cond_any(p, _true, _false, x[0]))(jnp.array([True, False]))
    np.testing.assert_array_equal(got, jnp.stack([_true(x[0]), _false(x[0])]))


def test_batched_form_is_one_branch_on_any():
    jaxpr = str(
        jax.make_jaxpr(jax.vmap(lambda p, v: cond_any(p, _true, _false, v)))(
            jnp.array([True, False]), jnp.ones((2, 3))
        )
    )
    assert "reduce_or" in jaxpr and "cond[" in jaxpr
