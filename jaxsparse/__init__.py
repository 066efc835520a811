"""jaxsparse: sparse training and plasticity for multi-task RL, inside jax.jit and vmap."""

__version__ = "0.1.0"
