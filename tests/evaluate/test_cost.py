"""psp_jax.evaluate.cost: parameter counts, XLA's FLOP count of a forward, per-image medians,
peak memory and the machine line that the families tables' cost columns are made of."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.evaluate import cost
from psp_jax.models.build import build_model
from configs import pspnet as pspnet_configs


class _TwoConvs(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(8, (1, 1))(x)                    # 2 * 3 * 8 MACs per pixel, plus the bias adds
    return nn.Conv(5, (3, 3), padding="VALID")(x)  # 2 * 9 * 8 * 5 per output pixel


def test_parameter_count_and_the_flops_of_a_known_forward():
  model = _TwoConvs()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 10, 12, 3)))
  assert cost.parameter_count(variables["params"]) == (3 * 8 + 8) + (9 * 8 * 5 + 5)
  gflops = cost.forward_gflops(lambda v, x: model.apply(v, x), variables, (10, 12))
  macs = 10 * 12 * 3 * 8 + 8 * 10 * 9 * 8 * 5
  assert gflops * 1e9 == pytest.approx(2 * macs + 10 * 12 * 8 + 8 * 10 * 5)  # MACs x 2 + bias adds
  # twice the pixels, about twice the FLOPs (exactly, up to the VALID border)
  assert cost.forward_gflops(lambda v, x: model.apply(v, x), variables, (20, 12)) > 1.9 * gflops


def test_pspnet_flops_grow_with_the_input_and_match_the_module_count():
  cfg = pspnet_configs.synthetic_mini().model
  model = build_model(cfg)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 65, 65, 3)))
  forward = lambda v, x: model.apply(v, x, train=False)  # noqa: E731
  small, large = cost.forward_gflops(forward, shapes, (65, 65)), cost.forward_gflops(forward, shapes, (129, 129))
  assert 0 < small < large and 3.5 < large / small < 5.0  # (129/65)^2 = 3.9; more: XLA leaves out padding taps, a larger share of small maps
  assert cost.parameter_count(shapes["params"]) == sum(int(np.prod(x.shape)) for x in
                                                       jax.tree_util.tree_leaves(shapes["params"]))


def test_median_ms_leaves_out_the_compiling_first_item():
  assert cost.median_ms([5.0, 0.010, 0.030, 0.020]) == pytest.approx(20.0)
  assert cost.median_ms([5.0, 0.010], skip_first=False) == pytest.approx(2505.0)
  assert cost.median_ms([0.004]) == pytest.approx(4.0)  # a single item is kept
  assert cost.median_ms([]) is None


def test_peak_memory_and_machine_describe_this_process():
  mib, what = cost.peak_memory_mb()
  assert mib > 50 and what in ("device peak bytes in use", "process peak resident set size")
  line = cost.machine()
  assert line.startswith(jax.local_devices()[0].platform + ":") and "jax " + jax.__version__ in line
  assert "cores" in line
