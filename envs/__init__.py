"""JAX-native environments for jaxsparse; this package imports nothing from `jaxsparse`."""
