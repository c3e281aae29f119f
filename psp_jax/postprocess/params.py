"""The parameters of the dense CRF (Krähenbühl and Koltun 2011, as DeepLab v1/v2 use it)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

NORMALISATIONS = ("per_pixel", "symmetric")


@dataclasses.dataclass(frozen=True)
class CRFParams:
  """Kernel weights and standard deviations of the two pairwise terms, and the inference.

  Pairwise energy sum_k w_k * k_k(f_i, f_j) * mu(l_i, l_j) with
    bilateral: k = exp(-|p_i - p_j|^2 / (2 xy_bi^2) - |I_i - I_j|^2 / (2 rgb_bi^2)),
    spatial:   k = exp(-|p_i - p_j|^2 / (2 xy_pos^2)),
  p in pixels, I the RGB values in 0..255.
  normalisation: 'per_pixel' (each message divided by its kernel row sum: DeepLab's) or
    'symmetric' (D^-1/2 K D^-1/2 with D the row sums: pydensecrf's default).
  """
  w_bi: float
  xy_bi: float
  rgb_bi: float
  w_pos: float
  xy_pos: float
  iterations: int = 10
  normalisation: str = "per_pixel"

  def __post_init__(self):
    for name in ("w_bi", "w_pos"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"CRFParams.{name}: a kernel weight must be a finite number >= 0, "
                         f"got {value!r}")
    for name in ("xy_bi", "rgb_bi", "xy_pos"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"CRFParams.{name}: a standard deviation must be a finite number > 0, "
                         f"got {value!r}")
    if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) \
        or self.iterations < 1:
      raise ValueError(f"CRFParams.iterations: must be an int >= 1, got {self.iterations!r}")
    if self.normalisation not in NORMALISATIONS:
      raise ValueError(f"CRFParams.normalisation: must be one of {NORMALISATIONS}, "
                       f"got {self.normalisation!r}")

  def replace(self, **changes: Any) -> "CRFParams":
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "CRFParams":
    """From a plain mapping (a config section); unknown keys are an error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
      raise ValueError(f"CRF parameters: unknown keys {unknown}; expected some of {sorted(fields)}")
    return cls(**dict(d))

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)
