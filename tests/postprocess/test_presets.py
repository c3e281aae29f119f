"""The spec's DenseCRF presets, and how settings are named in configs and on the command line."""
import pytest

from psp_jax.postprocess import PRESETS, CRFParams, resolve

# ../shared/specs/deeplab_segnet.md: (w_bi, xy_bi, rgb_bi, w_pos, xy_pos), 10 iterations
SPEC = {
    "v1_deeplab": (5, 50, 10, 3, 3),
    "v1_largefov": (4, 121, 5, 3, 3),
    "v2_resnet": (4, 67, 3, 3, 1),
    "v2_vgg": (4, 65, 3, 2, 2),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_presets_are_the_spec_numbers(name):
  p = PRESETS[name]
  assert (p.w_bi, p.xy_bi, p.rgb_bi, p.w_pos, p.xy_pos) == SPEC[name]
  assert p.iterations == 10 and p.normalisation == "per_pixel"


def test_no_other_presets():
  assert set(PRESETS) == set(SPEC)


def test_resolve_names_dicts_and_overrides():
  assert resolve("v2_vgg") is PRESETS["v2_vgg"]
  p = CRFParams(1, 2, 3, 4, 5)
  assert resolve(p) is p
  assert resolve({"w_bi": 1, "xy_bi": 2, "rgb_bi": 3, "w_pos": 4, "xy_pos": 5}) == p
  sym = resolve({"preset": "v2_resnet", "normalisation": "symmetric", "iterations": 5})
  assert sym == PRESETS["v2_resnet"].replace(normalisation="symmetric", iterations=5)
  assert resolve("v2_resnet:normalisation=symmetric,iterations=5") == sym
  assert resolve("w_bi=1,xy_bi=2,rgb_bi=3,w_pos=4,xy_pos=5") == p


def test_bad_settings_name_the_problem():
  with pytest.raises(ValueError, match="unknown CRF preset 'v3'"):
    resolve("v3")
  with pytest.raises(ValueError, match=r"unknown keys \['sigma'\]"):
    resolve({"preset": "v2_resnet", "sigma": 3})
  with pytest.raises(ValueError, match="CRFParams.normalisation: must be one of"):
    resolve({"preset": "v2_resnet", "normalisation": "row"})
  with pytest.raises(ValueError, match="CRFParams.rgb_bi: a standard deviation must be"):
    CRFParams(1, 2, 0, 4, 5)
  with pytest.raises(ValueError, match="expected key=value items, got 'w_bi'"):
    resolve("v2_resnet:w_bi")
  with pytest.raises(TypeError, match="preset name, a dict or CRFParams"):
    resolve(3)
