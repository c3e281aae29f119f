"""The DenseCRF settings of DeepLab v1 and v2 (../shared/specs/deeplab_segnet.md), by name.

Each is (w_bi, xy_bi, rgb_bi, w_pos, xy_pos) with 10 mean-field iterations and DeepLab's
per-pixel normalisation. DeepLab chose them by grid search on a val subset (see grid_search).
"""
from __future__ import annotations

from typing import Any, Mapping

from psp_jax.postprocess.params import CRFParams

PRESETS: dict[str, CRFParams] = {
    "v1_deeplab": CRFParams(w_bi=5, xy_bi=50, rgb_bi=10, w_pos=3, xy_pos=3),
    "v1_largefov": CRFParams(w_bi=4, xy_bi=121, rgb_bi=5, w_pos=3, xy_pos=3),
    "v2_resnet": CRFParams(w_bi=4, xy_bi=67, rgb_bi=3, w_pos=3, xy_pos=1),
    "v2_vgg": CRFParams(w_bi=4, xy_bi=65, rgb_bi=3, w_pos=2, xy_pos=2),
}


def parse(text: str) -> dict[str, Any]:
  """'NAME:key=value,...' or 'key=value,...' (a command-line form of the mapping) -> dict."""
  name, _, rest = text.rpartition(":") if ":" in text else ("", "", text)
  out: dict[str, Any] = {"preset": name} if name else {}
  for item in filter(None, (x.strip() for x in rest.split(","))):
    key, eq, value = item.partition("=")
    if not eq:
      raise ValueError(f"CRF settings {text!r}: expected key=value items, got {item!r}")
    key = key.strip()
    if key == "normalisation":
      out[key] = value.strip()
    elif key == "iterations":
      out[key] = int(value)
    else:
      out[key] = float(value)
  return out


def resolve(spec: str | Mapping[str, Any] | CRFParams) -> CRFParams:
  """CRFParams from a preset name, a CRFParams, a mapping (all fields, or {'preset': NAME,
  **overrides}), or its string form 'NAME:key=value,...' (e.g. 'v2_resnet:normalisation=
  symmetric,w_bi=5', for command lines and string config fields)."""
  if isinstance(spec, CRFParams):
    return spec
  if isinstance(spec, str):
    if ":" in spec or "=" in spec:
      return resolve(parse(spec))
    if spec not in PRESETS:
      raise ValueError(f"unknown CRF preset {spec!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[spec]
  if hasattr(spec, "to_dict"):  # an ml_collections.ConfigDict
    spec = spec.to_dict()
  if isinstance(spec, Mapping):
    d = dict(spec)
    if "preset" in d:
      return CRFParams.from_dict({**resolve(d.pop("preset")).to_dict(), **d})
    return CRFParams.from_dict(d)
  raise TypeError(f"CRF settings must be a preset name, a dict or CRFParams, got {type(spec).__name__}")
