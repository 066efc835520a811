"""`jaxsparse.algos.task_suite.TaskSuite`: task-major blocks, one-hot ids, auto-reset, under jit and
vmap over seeds. Checked on small Brax-API environments (no physics) whose every number is known,
so the suite's bookkeeping is tested exactly; the Meta-World tasks themselves are tested against
the `metaworld` package in tests/envs/metaworld."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State

from jaxsparse.algos.task_suite import TaskSuite


class Counter(Env):
    """obs = (u, steps, offset) with u ~ U(0, 1) drawn at reset; reward = a[0] + offset;
    the episode ends after `length` steps (truncation, or termination with `terminate`);
    success while u > 0.5."""

    def __init__(self, offset: float, length: int, terminate: bool = False, obs_extra: int = 0):
        self.offset, self.length, self.terminate, self.obs_extra = (
            offset,
            length,
            terminate,
            obs_extra,
        )

    @property
    def observation_size(self) -> int:
        return 3 + self.obs_extra

    @property
    def action_size(self) -> int:
        return 2

    @property
    def backend(self) -> str:
        return "none"

    def _obs(self, u, steps):
        return jnp.concatenate([jnp.stack([u, steps, self.offset]), jnp.zeros(self.obs_extra)])

    def reset(self, rng: jax.Array) -> State:
        u = jax.random.uniform(rng)
        zero = jnp.zeros(())
        info = {"u": u, "steps": jnp.zeros((), jnp.int32), "truncation": zero}
        return State(None, self._obs(u, 0.0), zero, zero, {"success": zero}, info)

    def step(self, state: State, action: jax.Array) -> State:
        steps = state.info["steps"] + 1
        done = (steps >= self.length).astype(jnp.float32)
        u = state.info["u"]
        info = {**state.info, "steps": steps, "truncation": 0.0 * done if self.terminate else done}
        return state.replace(
            obs=self._obs(u, steps.astype(jnp.float32)),
            reward=action[0] + self.offset,
            done=done,
            metrics={"success": (u > 0.5).astype(jnp.float32)},
            info=info,
        )


def suite(**kw) -> TaskSuite:
    envs = [Counter(10.0, 3), Counter(20.0, 5, terminate=True)]
    return TaskSuite(envs, 4, ["a", "b"], **kw)


def test_reset_layout_and_one_hot():
    s = suite()
    obs, state = s.reset(jax.random.key(0))
    assert s.num_envs == 8 and s.obs_dim == 5 and s.action_dim == 2
    np.testing.assert_array_equal(s.task_ids, [0, 0, 0, 0, 1, 1, 1, 1])
    obs = np.asarray(obs)
    np.testing.assert_array_equal(obs[:, 2], [10.0] * 4 + [20.0] * 4)  # each block's own env
    np.testing.assert_array_equal(obs[:, 3:], np.eye(2)[s.task_ids])
    assert len(set(obs[:, 0].tolist())) == 8  # every copy drew its own reset
    assert isinstance(state, tuple) and len(state) == 2
    assert suite(append_task_id=False).reset(jax.random.key(0))[0].shape[1] == 3


def test_steps_rewards_auto_reset_and_success():
    s = suite()
    step = jax.jit(s.step)
    obs, state = s.reset(jax.random.key(1))
    u0 = np.asarray(obs[:, 0])
    actions = jnp.tile(jnp.arange(8, dtype=jnp.float32)[:, None] / 10, (1, 2))
    for k in range(1, 6):
        out = step(jax.random.key(100 + k), state, actions)
        state = out.state
        np.testing.assert_allclose(out.reward, np.arange(8) / 10 + np.repeat([10.0, 20.0], 4))
        np.testing.assert_array_equal(out.success, np.concatenate([u0[:4], u0[4:]]) > 0.5)
        ended_a, ended_b = k == 3, k == 5
        np.testing.assert_array_equal(out.truncated, [ended_a] * 4 + [False] * 4)
        np.testing.assert_array_equal(out.terminated, [False] * 4 + [ended_b] * 4)
        final, new = np.asarray(out.final_obs), np.asarray(out.obs)
        np.testing.assert_array_equal(final[:, 1], [(k - 1) % 3 + 1] * 4 + [k] * 4)
        if ended_a:  # block a restarts: step count 0, a fresh draw; block b goes on
            np.testing.assert_array_equal(new[:4, 1], 0.0)
            assert not np.any(new[:4, 0] == u0[:4])
            np.testing.assert_array_equal(new[4:], final[4:])
            u0 = np.concatenate([new[:4, 0], u0[4:]])
        elif not ended_b:
            np.testing.assert_array_equal(new, final)
    np.testing.assert_array_equal(np.asarray(out.obs)[4:, 1], 0.0)  # block b restarted at k=5


def test_vmap_over_seeds_matches_each_seed_alone():
    s = suite()
    keys = jax.random.split(jax.random.key(2), 3)

    def rollout(key):
        _, state = s.reset(key)
        actions = jnp.ones((8, 2))

        def body(state, k):
            out = s.step(k, state, actions)
            return out.state, (out.obs, out.reward, out.truncated)

        return jax.lax.scan(body, state, jax.random.split(key, 7))[1]

    batched = jax.jit(jax.vmap(rollout))(keys)
    for i, key in enumerate(keys):
        alone = jax.jit(rollout)(key)
        for b, a in zip(batched, alone, strict=True):
            np.testing.assert_array_equal(np.asarray(b)[i], np.asarray(a))


def test_bad_input():
    s = suite()
    _, state = s.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"actions must have shape \[num_envs, action_dim\]"):
        s.step(jax.random.key(0), state, jnp.zeros((8, 3)))
    with pytest.raises(ValueError, match="same observation and action sizes"):
        TaskSuite([Counter(0.0, 3), Counter(0.0, 3, obs_extra=1)], 2)
    with pytest.raises(ValueError, match="num_envs_per_task"):
        TaskSuite([Counter(0.0, 3)], 0)
    with pytest.raises(ValueError, match="2 task names for 1 environments"):
        TaskSuite([Counter(0.0, 3)], 2, ["a", "b"])


def test_metaworld_fixed_goals_draw_k_reset_vectors_per_task_once():
    """`fixed_goals=K`: every task gets K reset vectors drawn once with its own sampling rule (the
    same for the same key), and every later draw is one of them; 0 samples freely."""
    from jaxsparse.algos.task_suite import metaworld_suite

    tasks = ["reach-v3", "push-v3"]
    key = jax.random.PRNGKey(5)
    s = metaworld_suite(tasks, 1, fixed_goals=3, goal_key=key)
    again = metaworld_suite(tasks, 1, fixed_goals=3, goal_key=key)
    for env, twin in zip(s.envs, again.envs, strict=True):
        goals = np.asarray(env.goals)
        assert goals.shape == (3, env.reset_dim) and len(np.unique(goals, axis=0)) == 3
        np.testing.assert_array_equal(goals, np.asarray(twin.goals))
        low, high = np.asarray(env.RESET_LOW), np.asarray(env.RESET_HIGH)
        assert np.all((goals >= low - 1e-6) & (goals <= high + 1e-6))
        drawn = np.asarray(jax.vmap(env.sample_rand_vec)(jax.random.split(key, 16)))
        assert all(np.any(np.all(np.isclose(d, goals), axis=1)) for d in drawn)
    assert not np.array_equal(
        np.asarray(s.envs[0].goals)[:, :3], np.asarray(s.envs[1].goals)[:, :3]
    )
    assert metaworld_suite(["reach-v3"], 1).envs[0].goals is None
    with pytest.raises(ValueError, match="give goal_key and no goals"):
        metaworld_suite(["reach-v3"], 1, fixed_goals=2)
    with pytest.raises(ValueError, match="fixed_goals"):
        metaworld_suite(["reach-v3"], 1, fixed_goals=-1, goal_key=key)


def test_chunked_vmap_equals_vmap():
    """Chunks of `chunk` rows through `lax.map` (and a smaller last `vmap` for the remainder)
    give exactly `vmap`'s result, for pytrees in and out."""
    from jaxsparse.algos.task_suite import chunked_vmap

    def fn(x, tree):
        return {"sum": x.sum() + tree["b"], "scaled": x * tree["b"]}

    x = jnp.arange(30.0).reshape(10, 3)
    tree = {"b": jnp.arange(10.0) - 4.0}
    want = jax.vmap(fn)(x, tree)
    for chunk in (None, 1, 3, 4, 5, 10, 16):
        got = jax.jit(chunked_vmap(fn, 10, chunk))(x, tree)
        for k in want:
            np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)
    with pytest.raises(ValueError, match="chunk"):
        chunked_vmap(fn, 10, 0)


def test_max_vmap_chunks_each_block_without_changing_the_rollout():
    """A suite whose blocks run as chunks of 3 copies (4 per task: one chunk of 3 and a
    remainder of 1) resets and steps, auto-reset included, exactly as the unchunked suite."""

    def rollout(s, key):
        obs, state = s.reset(key)
        actions = jnp.ones((8, 2))

        def body(state, k):
            out = s.step(k, state, actions)
            return out.state, (out.obs, out.reward, out.truncated, out.final_obs)

        return obs, jax.lax.scan(body, state, jax.random.split(key, 7))[1]

    key = jax.random.key(3)
    plain = jax.jit(lambda k: rollout(suite(), k))(key)
    chunked = jax.jit(lambda k: rollout(suite(max_vmap=3), k))(key)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(chunked), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="max_vmap"):
        suite(max_vmap=0)


def test_metaworld_suite_chunks_above_the_cpu_safe_batch():
    """On CPU a vmapped MJX step over more than 256 environments deadlocks in XLA's runtime
    (envs/metaworld/README.md): the Meta-World suite caps each vmap at 256 there, so 512
    environments per task run as two chunks (building the suite compiles nothing); a suite of
    several tasks that large warns of its compile time."""
    from jaxsparse.algos.task_suite import CPU_SAFE_BATCH, metaworld_suite

    if jax.default_backend() != "cpu":
        pytest.skip("the cap is for CPU only")
    import warnings

    s = metaworld_suite(["reach-v3"], 2 * CPU_SAFE_BATCH)
    assert CPU_SAFE_BATCH == 256 and s.max_vmap == CPU_SAFE_BATCH
    assert s.num_envs == 512
    with pytest.warns(UserWarning, match="compiles for very long"):  # several tasks that large
        metaworld_suite(["reach-v3", "push-v3"], CPU_SAFE_BATCH + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metaworld_suite(["reach-v3", "push-v3"], CPU_SAFE_BATCH)
