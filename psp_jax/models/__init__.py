"""Flax modules: dilated ResNet, pyramid pooling, PSPNet and its heads, CascadePSP's refinement module."""
from psp_jax.models.normalization import BatchNorm
from psp_jax.models.ops import adaptive_pool, resize_bilinear
from psp_jax.models.ppm import PyramidPooling
from psp_jax.models.pspnet import PSPNet
from psp_jax.models.refinement import RefinementModule, pad_to_multiple
from psp_jax.models.resnet import BNConfig, ResNet

__all__ = ["BatchNorm", "BNConfig", "PSPNet", "PyramidPooling", "RefinementModule", "ResNet",
           "adaptive_pool", "pad_to_multiple", "resize_bilinear"]
