"""psp_jax: PSPNet and CascadePSP in JAX/Flax."""
__version__ = "0.1.0"
