"""Post-processing of segmentation scores: the fully connected CRF (DenseCRF).

  probs = psp_jax.postprocess.dense_crf(image_uint8_hwc, logits_hwk, "v2_resnet")
"""
from psp_jax.postprocess.crf import crf_probabilities, dense_crf, mean_field
from psp_jax.postprocess.grid_search import COARSE_GRID, grid_search
from psp_jax.postprocess.params import CRFParams
from psp_jax.postprocess.presets import PRESETS, resolve

__all__ = ["dense_crf", "mean_field", "crf_probabilities", "grid_search", "COARSE_GRID",
           "CRFParams", "PRESETS", "resolve"]
