"""Spatial ops with PyTorch's exact semantics (bilinear resize, adaptive pooling), the
convolution the layers call (`conv_general_dilated`: XLA's, rewritten where a shape runs faster)
and `materialize` (a value XLA's CPU fusion must not recompute).

`jax.image.resize` implements only the half-pixel ("align_corners=False") convention and
antialiases when shrinking; PyTorch checkpoints were trained with `F.interpolate(...,
align_corners=True)` (PSPNet) and `align_corners=False` without antialiasing (CascadePSP).
Both are written here as small interpolation matrices applied with einsum: exact, static in
shape, and a matrix product on every backend.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# The switches for the rewrites, all read when a model is traced (JAX caches traces,
# so set them before the first call). experiments/benchmark_layers.py --rewrites measures the
# forward of each, experiments/benchmark_core.py train_step --torch the train step (with
# --pointwise-dot-grad-min-weights 0 for the state before the second); the numbers are in
# experiments/results/speed_vs_pytorch_*.md and speed_train_step_pointwise_dot_grad.md.
#
# CONV_SPLIT_MIN_CHANNELS: a convolution with a spatial kernel and at least this many input
# channels runs as convolutions of CONV_SPLIT_CHUNK channels each, summed. XLA's CPU convolution
# is slower on very deep inputs: PSPNet's 3x3 4096->512 head at 60x60 ran 1.30x faster split in 8.
#
# POINTWISE_DOT_GRAD_MIN_WEIGHTS: a 1x1 convolution (any stride, no padding) whose kernel has at
# least this many weights (C_in x C_out) keeps XLA's convolution forward, but its gradients are
# matrix products (dx = dy . W^T, dW = x^T . dy over all pixels): XLA's CPU convolution
# computes large 1x1 weight gradients several times slower than the same product as a dot.
#
# POINTWISE_DOT_MIN_WEIGHTS: such a 1x1 convolution is one matrix product forward too (its
# gradients are then dots by autodiff, so it takes precedence over the rule above, which remains
# for the forward bits of XLA's convolution when this one is 0). In ad-hoc A/B runs PSPNet-50's
# forward ran 1.02-1.09x faster with it, the train step unchanged.
#
# PIXELS_MATMUL: both 1x1 rules' products are 2-D matrix products over the N*H*W pixels
# (`_pixels_matmul`), not 4-D einsums, whose weight gradient (a contraction over n, h, w) XLA's
# CPU backend ran up to 1.9x slower. 0 restores the einsums (for A/B timings).
#
# MATERIALIZE_MIN_CHANNELS: residual blocks whose output has at least this many channels write it
# to memory once (`materialize`). XLA's CPU fusion otherwise recomputes the residual stream (BN,
# add, ReLU of every earlier block of the stage) inside each transpose the weight gradients need:
# PSPNet-50's train step spent 1.04 of 6.5 s of operation time in such transposes, 0.49 s after.
# Both together, side by side: experiments/speed_rewrites.sh, results/speed_rewrites_*.md.
#
# TAP_DOT_GRAD_MIN_WEIGHTS: a stride-1 convolution with a spatial kernel (3x3, any dilation and
# padding) whose kernel has at least this many weights (C_in x C_out) keeps its forward (XLA's
# convolution, split as above where that applies) and its input gradient (autodiff's), but its
# weight gradient is one matrix product per kernel tap, dW[i, j] = x_shifted(i, j)^T . dy over
# all pixels. XLA's CPU convolution computes those weight gradients as a convolution with an
# image-sized kernel, 1.1-2.8x slower than the dots on PSPNet-50's layer3/layer4/head shapes
# (and slower than the dots still on the narrow, large-image stem: hence the threshold).
#
# MAX_POOL_SLICES_MIN_CHANNELS: max pooling (`max_pool_window`) of an input with at least this
# many channels is the running maximum of its kernel x kernel strided window slices (the same
# bits forward), with a gradient of elementwise selects that XLA fuses, each window's gradient
# going to its first maximum (the rule of XLA's own gradient and of PyTorch's). XLA's CPU
# gradient of the pooling (select_and_scatter) took 47 ms on PSPNet-50's stem pool at
# 2x117x117x128 in an ad-hoc timing (2026-12-07, Intel Xeon with AVX-512), the slices 6.6 ms
# and PyTorch 15.7 ms (forward + backward each).
#
# All thresholds keep every narrow (mini-scale) model on the plain path, bit for bit, so the
# committed mini tables rerun to the same digits. 0 turns a rewrite off.
#
# Not a rewrite but a compiler setting, in psp_jax/xla_cpu.py: on a CPU with AVX-512 the train
# steps compile XLA's CPU convolutions as its own (Eigen) code instead of YNNPACK's, and trace
# their model inside `xla_own_convolutions()`. The tap-dot weight gradients were chosen against
# YNNPACK's; against XLA's own they lose (2026-12-07, Intel Xeon with AVX-512 and AMX, 2 cores,
# ad hoc, dW alone at 2x30x30: the 3x3 4096->512 head 375 ms as taps vs 301 ms, 512->512 at
# dilation 4 37.1 vs 33.3, 256->256 at dilation 2 11.7 vs 11.0; capped to AVX2 the same: 490 vs
# 433, 55 vs 50, 16.1 vs 14.8), so there they are off unless TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS
# is 1 (`bash experiments/speed_conv_grads.sh native|avx2` measures the step both ways).
# Under YNNPACK's convolutions they also lose on an AMD EPYC (Zen 4, capped to AVX2, 2 cores,
# 2026-12-08: PSPNet-50's step 1.07-1.13x faster without them in five alternating rounds; the
# head's dW as taps 817 ms against PyTorch's 485), where on an Intel Xeon without AMX they made
# the capped step 1.44x faster. So the train steps also trace inside `tap_dot_grads_pay(False)`
# on the CPUs psp_jax/xla_cpu.py lists (`xla_cpu.tap_dot_grads_pay`), unless
# TAP_DOT_GRAD_CPU_RULE is 0 (the tap dots whatever the CPU).
CONV_SPLIT_MIN_CHANNELS = 2048
CONV_SPLIT_CHUNK = 512
POINTWISE_DOT_GRAD_MIN_WEIGHTS = 512 * 512
POINTWISE_DOT_MIN_WEIGHTS = 512 * 512
MATERIALIZE_MIN_CHANNELS = 1024
TAP_DOT_GRAD_MIN_WEIGHTS = 256 * 256
MAX_POOL_SLICES_MIN_CHANNELS = 128
TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS = 0
PIXELS_MATMUL = 1  # 0: the 1x1 dots as the 4-D einsums of before (see `_pixels_matmul`)
TAP_DOT_GRAD_CPU_RULE = 1  # 0: tap-dot weight gradients on every CPU (see `tap_dot_grads_pay`)
SWITCHES = ("CONV_SPLIT_MIN_CHANNELS", "CONV_SPLIT_CHUNK", "POINTWISE_DOT_GRAD_MIN_WEIGHTS",
            "POINTWISE_DOT_MIN_WEIGHTS", "MATERIALIZE_MIN_CHANNELS", "TAP_DOT_GRAD_MIN_WEIGHTS",
            "MAX_POOL_SLICES_MIN_CHANNELS", "TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS", "PIXELS_MATMUL",
            "TAP_DOT_GRAD_CPU_RULE")

_XLA_OWN_CONVOLUTIONS = contextvars.ContextVar("xla_own_convolutions", default=False)


@contextlib.contextmanager
def xla_own_convolutions(enabled: bool = True):
  """Models traced inside are compiled with XLA's own CPU convolutions, not YNNPACK's
  (psp_jax/xla_cpu.py's setting; the train steps trace inside it where they compile with it):
  the tap-dot weight gradients are then off (see TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS). Read at
  trace time, like the switches: JAX caches the traces of one function object, so trace a new
  one inside it (as `train.step.compile_data_parallel` does)."""
  token = _XLA_OWN_CONVOLUTIONS.set(bool(enabled))
  try:
    yield
  finally:
    _XLA_OWN_CONVOLUTIONS.reset(token)


_TAP_DOT_GRADS_PAY = contextvars.ContextVar("tap_dot_grads_pay", default=True)


@contextlib.contextmanager
def tap_dot_grads_pay(enabled: bool = True):
  """Models traced inside `tap_dot_grads_pay(False)` keep the plain weight gradients on the CPU
  they are compiled for (psp_jax/xla_cpu.py's `tap_dot_grads_pay`; the train steps trace inside
  it), unless TAP_DOT_GRAD_CPU_RULE is 0. Read at trace time, as `xla_own_convolutions`."""
  token = _TAP_DOT_GRADS_PAY.set(bool(enabled))
  try:
    yield
  finally:
    _TAP_DOT_GRADS_PAY.reset(token)


def tap_dot_grads_on() -> bool:
  """Whether the tap-dot weight gradients apply to what is traced now."""
  return (bool(TAP_DOT_GRAD_MIN_WEIGHTS)
          and (bool(TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS) or not _XLA_OWN_CONVOLUTIONS.get())
          and (not TAP_DOT_GRAD_CPU_RULE or _TAP_DOT_GRADS_PAY.get()))


def parse_switches(items: Sequence[str], flag: str) -> dict[str, int]:
  """Command-line `NAME=INT` items (of option `flag`) -> {NAME: INT}, NAME one of SWITCHES;
  anything else is refused with a message naming the flag and the switches."""
  switches = {}
  for item in items:
    name, sep, value = item.partition("=")
    if not sep or name not in SWITCHES or not value.strip().isdigit():
      raise ValueError(f"{flag} {item!r}: expected NAME=INT with NAME one of {', '.join(SWITCHES)}")
    switches[name] = int(value)
  return switches

_NHWC = ("NHWC", "HWIO", "NHWC")
_NHWC_SPECS = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # their lhs, rhs and out specs


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` (same arguments; flax's nn.Conv takes it as
  `conv_general_dilated=`), with the rewrites above where they apply."""
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                           dimension_numbers=dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  in_lhs, in_rhs = dn.lhs_spec[1], dn.rhs_spec[1]
  channels = lhs.shape[in_lhs]
  spatial = math.prod(rhs.shape[d] for d in dn.rhs_spec[2:])
  plain_groups = feature_group_count == 1 and batch_group_count == 1
  pointwise = functools.partial(_pointwise_applies, lhs, rhs, window_strides, padding, lhs_dilation,
                                dn, plain_groups, preferred_element_type)
  if pointwise(POINTWISE_DOT_MIN_WEIGHTS):  # a matrix product both ways
    sh, sw = window_strides
    return _pixels_matmul(lhs[:, ::sh, ::sw], rhs[0, 0], precision)
  if pointwise(POINTWISE_DOT_GRAD_MIN_WEIGHTS):
    # Under shard_map a replicated kernel meets a per-device input: make the kernel varying
    # first (as JAX does for the plain convolution), so its gradient is summed over the devices
    # outside the custom gradient, by that cast's transpose.
    lhs, rhs = _same_varying_axes(lhs, rhs)
    return _pointwise_conv(lhs, rhs, tuple(window_strides), precision)
  split = (CONV_SPLIT_MIN_CHANNELS and channels >= CONV_SPLIT_MIN_CHANNELS and spatial > 1
           and channels % CONV_SPLIT_CHUNK == 0 and plain_groups)
  pads = _tap_dot_grad_pads(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dn,
                            plain_groups, preferred_element_type)
  if pads is not None:
    lhs, rhs = _same_varying_axes(lhs, rhs)  # as for _pointwise_conv
    dilation = tuple(rhs_dilation) if rhs_dilation is not None else (1, 1)
    return _tap_grad_conv(lhs, rhs, pads, dilation, CONV_SPLIT_CHUNK if split else 0, precision)
  if not split:
    return conv(lhs, rhs, feature_group_count=feature_group_count,
                batch_group_count=batch_group_count)
  return _split_conv(conv, lhs, rhs, in_lhs, in_rhs, CONV_SPLIT_CHUNK)


def _split_conv(conv, lhs, rhs, in_lhs: int, in_rhs: int, chunk: int):
  """conv(lhs, rhs) as the sum of convolutions over `chunk` input channels each."""
  parts = [conv(lax.slice_in_dim(lhs, i, i + chunk, axis=in_lhs),
                lax.slice_in_dim(rhs, i, i + chunk, axis=in_rhs))
           for i in range(0, lhs.shape[in_lhs], chunk)]
  return functools.reduce(operator.add, parts)


def _tap_dot_grad_pads(lhs, rhs, strides, padding, lhs_dilation, rhs_dilation, dn, plain_groups,
                       preferred_element_type):
  """The explicit ((top, bottom), (left, right)) padding of a 2-D NHWC/HWIO stride-1
  convolution with a spatial kernel of at least TAP_DOT_GRAD_MIN_WEIGHTS weights (C_in x C_out),
  no input dilation and no negative padding; None where the tap-dot weight gradient does not
  apply."""
  if not tap_dot_grads_on() or not plain_groups or preferred_element_type is not None:
    return None
  if lhs.ndim != 4 or (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)) != _NHWC_SPECS:
    return None
  if rhs.shape[:2] == (1, 1) or rhs.shape[2] * rhs.shape[3] < TAP_DOT_GRAD_MIN_WEIGHTS:
    return None
  if any(s != 1 for s in strides) or (lhs_dilation is not None and any(d != 1 for d in lhs_dilation)):
    return None
  dilation = tuple(rhs_dilation) if rhs_dilation is not None else (1, 1)
  if isinstance(padding, str):
    window = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:2], dilation)]
    padding = lax.padtype_to_pads(lhs.shape[1:3], window, (1, 1), padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  if any(p < 0 for pair in pads for p in pair):
    return None
  return pads


def _spatial_conv(x, w, pads, dilation, chunk, precision):
  """The forward of `_tap_grad_conv`: XLA's convolution, split over `chunk` input channels
  when chunk > 0 (as CONV_SPLIT_MIN_CHANNELS chose)."""
  conv = functools.partial(lax.conv_general_dilated, window_strides=(1, 1), padding=pads,
                           rhs_dilation=dilation, dimension_numbers=_NHWC, precision=precision)
  return _split_conv(conv, x, w, 3, 2, chunk) if chunk else conv(x, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _tap_grad_conv(x, w, pads, dilation, chunk, precision):
  """(N, H, W, C) x (KH, KW, C, O) -> (N, Ho, Wo, O), stride 1: `_spatial_conv`; the weight
  gradient as one dot per kernel tap (see TAP_DOT_GRAD_MIN_WEIGHTS)."""
  return _spatial_conv(x, w, pads, dilation, chunk, precision)


def _tap_grad_conv_fwd(x, w, pads, dilation, chunk, precision):
  return _spatial_conv(x, w, pads, dilation, chunk, precision), (x, w)


def _tap_grad_conv_bwd(pads, dilation, chunk, precision, residuals, dy):
  x, w = residuals
  dx = jax.vjp(lambda a: _spatial_conv(a, w, pads, dilation, chunk, precision), x)[1](dy)[0]
  kh, kw, c, o = w.shape
  _, ho, wo, _ = dy.shape
  (dh, dw_) = dilation
  xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  dyt = dy.reshape(-1, o).T  # (O, N*Ho*Wo)
  # tap (i, j) reads the padded input at rows i*dh, ..., i*dh + Ho - 1 (and likewise columns)
  taps = [jnp.matmul(dyt, xp[:, i * dh:i * dh + ho, j * dw_:j * dw_ + wo, :].reshape(-1, c),
                     precision=precision)
          for i in range(kh) for j in range(kw)]  # (O, C) each
  dw = jnp.stack(taps).reshape(kh, kw, o, c).transpose(0, 1, 3, 2).astype(w.dtype)
  return dx, dw


_tap_grad_conv.defvjp(_tap_grad_conv_fwd, _tap_grad_conv_bwd)


def _pointwise_applies(lhs, rhs, strides, padding, lhs_dilation, dn, plain_groups,
                       preferred_element_type, min_weights: int) -> bool:
  """A 2-D NHWC/HWIO 1x1 convolution without padding or input dilation, with at least
  `min_weights` weights (0: never)."""
  del strides  # any stride: the input is subsampled first
  if not min_weights or not plain_groups or preferred_element_type is not None:
    return False
  if lhs.ndim != 4 or (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)) != _NHWC_SPECS:
    return False
  if rhs.shape[:2] != (1, 1) or rhs.shape[2] * rhs.shape[3] < min_weights:
    return False
  if lhs_dilation is not None and any(d != 1 for d in lhs_dilation):
    return False
  if isinstance(padding, str):  # a 1x1 kernel pads nothing under SAME or VALID
    return padding.upper() in ("SAME", "VALID")
  return all(tuple(p) == (0, 0) for p in padding)


def _pixels_matmul(x, w, precision):
  """(N, H, W, C) @ (C, O) -> (N, H, W, O) as one 2-D matrix product over the N*H*W pixels.
  Its autodiff weight gradient is then x^T . dy of 2-D matrices, which XLA's CPU backend ran
  1.1-1.9x faster than the same contraction over (n, h, w) that a 4-D einsum's gradient is
  (2026-12-07, Intel Xeon with AVX-512 and AMX, ad hoc: 1x1 256->1024 at 2x30x30 3.9 vs 7.3 ms,
  1024->2048 25.5 vs 32.3; capped to AVX2 5.6 vs 8.7, 39.9 vs 46.4); the forward is the same."""
  if not PIXELS_MATMUL:
    return jnp.einsum("nhwc,co->nhwo", x, w, precision=precision)
  n, h, wd, c = x.shape
  return jnp.matmul(x.reshape(n * h * wd, c), w, precision=precision).reshape(n, h, wd, w.shape[-1])


def _same_varying_axes(a, b):
  """(a, b) cast to vary over the union of their mesh axes (a no-op outside shard_map)."""
  vma_a, vma_b = (jax.typeof(v).manual_axis_type.varying for v in (a, b))
  if vma_b - vma_a:
    a = lax.pcast(a, tuple(sorted(vma_b - vma_a)), to="varying")
  if vma_a - vma_b:
    b = lax.pcast(b, tuple(sorted(vma_a - vma_b)), to="varying")
  return a, b


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _pointwise_conv(x, w, strides, precision):
  """(N, H, W, C) x (1, 1, C, O) -> (N, Ho, Wo, O): XLA's convolution; gradients as dots."""
  return lax.conv_general_dilated(x, w, strides, ((0, 0), (0, 0)), dimension_numbers=_NHWC,
                                  precision=precision)


def _pointwise_conv_fwd(x, w, strides, precision):
  return _pointwise_conv(x, w, strides, precision), (x, w)


def _pointwise_conv_bwd(strides, precision, residuals, dy):
  x, w = residuals
  (n, h, wd, c), (_, ho, wo, _) = x.shape, dy.shape
  sh, sw = strides
  # the input pixels the output reads: rows 0, sh, ..., (ho - 1) * sh (and likewise columns)
  xs = lax.slice(x, (0, 0, 0, 0), (n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, c), (1, sh, sw, 1))
  if PIXELS_MATMUL:  # as `_pixels_matmul`'s gradient
    dw = jnp.matmul(xs.reshape(-1, c).T, dy.reshape(-1, dy.shape[-1]), precision=precision)
  else:
    dw = jnp.einsum("nhwc,nhwo->co", xs, dy, precision=precision)
  dw = dw.astype(w.dtype)[None, None]
  dxs = jnp.einsum("nhwo,co->nhwc", dy, w[0, 0], precision=precision).astype(x.dtype)
  if (sh, sw) != (1, 1):  # back onto the strided grid, zeros elsewhere
    zero = jnp.zeros((), dxs.dtype)
    dxs = lax.pad(dxs, zero, ((0, 0, 0), (0, h - 1 - (ho - 1) * sh, sh - 1),
                              (0, wd - 1 - (wo - 1) * sw, sw - 1), (0, 0, 0)))
  return dxs, dw


_pointwise_conv.defvjp(_pointwise_conv_fwd, _pointwise_conv_bwd)


def max_pool_window(x: jnp.ndarray, kernel: int, stride: int,
                    pads: Sequence[tuple[int, int]]) -> jnp.ndarray:
  """Max pooling of NHWC `x` (N, H, W, C) with a square `kernel` window, `stride`, and -inf
  padding `pads` ((top, bottom), (left, right)) -> (N, Ho, Wo, C): XLA's reduce_window, or
  the window slices of MAX_POOL_SLICES_MIN_CHANNELS where that applies."""
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  if MAX_POOL_SLICES_MIN_CHANNELS and x.shape[-1] >= MAX_POOL_SLICES_MIN_CHANNELS:
    return _max_pool_slices(x, int(kernel), int(stride), pads)
  # A Python-scalar identity lets JAX use its differentiable max-pool primitive.
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, kernel, kernel, 1), (1, stride, stride, 1),
                           ((0, 0),) + pads + ((0, 0),))


def _window_slices(xp, kernel: int, stride: int, ho: int, wo: int):
  """[(i, j, xp's (N, Ho, Wo, C) slice read by window tap (i, j))], taps in row-major order."""
  n, _, _, c = xp.shape
  return [(i, j, lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
                           (1, stride, stride, 1)))
          for i in range(kernel) for j in range(kernel)]


def _pool_geometry(x, kernel, stride, pads):
  (t, b), (l, r) = pads
  hp, wp = x.shape[1] + t + b, x.shape[2] + l + r
  return hp, wp, (hp - kernel) // stride + 1, (wp - kernel) // stride + 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_slices(x, kernel, stride, pads):
  """(N, H, W, C) -> (N, Ho, Wo, C): the elementwise maximum of the window slices."""
  (t, b), (l, r) = pads
  _, _, ho, wo = _pool_geometry(x, kernel, stride, pads)
  xp = lax.pad(x, jnp.array(-jnp.inf, x.dtype), ((0, 0, 0), (t, b, 0), (l, r, 0), (0, 0, 0)))
  return functools.reduce(jnp.maximum, [s for _, _, s in _window_slices(xp, kernel, stride, ho, wo)])


def _max_pool_slices_fwd(x, kernel, stride, pads):
  out = _max_pool_slices(x, kernel, stride, pads)
  return out, (x, out)


def _max_pool_slices_bwd(kernel, stride, pads, residuals, g):
  x, out = residuals
  (t, b), (l, r) = pads
  hp, wp, ho, wo = _pool_geometry(x, kernel, stride, pads)
  xp = lax.pad(x, jnp.array(-jnp.inf, x.dtype), ((0, 0, 0), (t, b, 0), (l, r, 0), (0, 0, 0)))
  zero = jnp.zeros((), g.dtype)
  taken = jnp.zeros(out.shape, bool)
  dxp = None
  for i, j, s in _window_slices(xp, kernel, stride, ho, wo):
    hit = (s == out) & ~taken  # the first maximum of each window takes its gradient
    taken = taken | hit
    part = lax.pad(jnp.where(hit, g, zero), zero,
                   ((0, 0, 0), (i, hp - i - (ho - 1) * stride - 1, stride - 1),
                    (j, wp - j - (wo - 1) * stride - 1, stride - 1), (0, 0, 0)))
    dxp = part if dxp is None else dxp + part
  return (dxp[:, t:t + x.shape[1], l:l + x.shape[2]],)


_max_pool_slices.defvjp(_max_pool_slices_fwd, _max_pool_slices_bwd)


def linear_interpolation_matrix(in_size: int, out_size: int, align_corners: bool,
                                scale: float | None = None) -> np.ndarray:
  """(out_size, in_size) matrix M so that M @ x is PyTorch's 1-D linear interpolation of x.

  align_corners=True:  src = dst * (in - 1) / (out - 1)   (corners map to corners).
  align_corners=False: src = (dst + 0.5) * in / out - 0.5, clamped at 0 (half-pixel centres);
    with `scale` (PyTorch's `scale_factor`, as CascadePSP's inference resizes) the step is
    1 / scale instead of in / out.
  """
  if in_size < 1 or out_size < 1:
    raise ValueError(f"resize sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = dst * step
  else:
    step = 1.0 / scale if scale else in_size / out_size
    src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  m = np.zeros((out_size, in_size), dtype=np.float64)
  rows = np.arange(out_size)
  np.add.at(m, (rows, lo), 1.0 - frac)
  np.add.at(m, (rows, hi), frac)
  return m.astype(np.float32)


def resize_bilinear(x: jnp.ndarray, size: Sequence[int], align_corners: bool) -> jnp.ndarray:
  """Bilinear resize of NHWC `x` to `size` = (H', W'), as `F.interpolate(mode='bilinear')`.

  No antialiasing (PyTorch does none). Returns x unchanged when the size already matches.
  """
  if x.ndim != 4:
    raise ValueError(f"resize_bilinear expects NHWC input of rank 4, got shape {x.shape}")
  out_h, out_w = int(size[0]), int(size[1])
  _, h, w, _ = x.shape
  if (h, w) == (out_h, out_w):
    return x
  mh = jnp.asarray(linear_interpolation_matrix(h, out_h, align_corners), dtype=x.dtype)
  mw = jnp.asarray(linear_interpolation_matrix(w, out_w, align_corners), dtype=x.dtype)
  if h != out_h:
    x = jnp.einsum("oh,nhwc->nowc", mh, x)
  if w != out_w:
    x = jnp.einsum("pw,nowc->nopc", mw, x)
  return x


def adaptive_pool_cells(length: int, bins: int) -> list[tuple[int, int]]:
  """PyTorch's adaptive-pooling cells: cell i covers [floor(i*L/n), ceil((i+1)*L/n)).

  Cells overlap when `bins` does not divide `length`; with bins > length some cells repeat.
  """
  if bins < 1:
    raise ValueError(f"adaptive pooling needs bins >= 1, got {bins}")
  return [(math.floor(i * length / bins), math.ceil((i + 1) * length / bins)) for i in range(bins)]


def adaptive_pool(x: jnp.ndarray, bins: int, mode: Literal["avg", "max"] = "avg") -> jnp.ndarray:
  """Adaptive average or max pooling of NHWC `x` to (N, bins, bins, C), PyTorch cell boundaries.

  Shapes are static, so the cells are static slices: no masks, exact for any H, W.
  """
  if mode not in ("avg", "max"):
    raise ValueError(f"adaptive_pool mode must be 'avg' or 'max', got {mode!r}")
  _, h, w, _ = x.shape
  reduce = jnp.mean if mode == "avg" else jnp.max
  rows = []
  for h0, h1 in adaptive_pool_cells(h, bins):
    band = x[:, h0:h1]
    cells = [reduce(band[:, :, w0:w1], axis=(1, 2)) for w0, w1 in adaptive_pool_cells(w, bins)]
    rows.append(jnp.stack(cells, axis=1))  # (N, bins, C)
  return jnp.stack(rows, axis=1)  # (N, bins, bins, C)


def materialize(x):
  """x, unchanged, written to memory once: an identity XLA cannot fuse through, for a value with
  several consumers (a residual block's output: the next block, its shortcut, the transposes of
  the weight gradients). Without it XLA's CPU fusion recomputes the whole residual stream inside
  each of those transposes (see MATERIALIZE_MIN_CHANNELS). Arrays with fewer than that many
  channels (last axis), or with the switch at 0, are returned as they are.

  The identity is an in-place update of one element with itself, at an index read from the data
  (0 * x[0], which XLA may not fold: NaN * 0 is NaN), so it is not simplified away; the index is
  clamped as any dynamic index is, so the result is x bit for bit whatever x holds."""
  if not MATERIALIZE_MIN_CHANNELS or x.ndim == 0 or x.shape[-1] < MATERIALIZE_MIN_CHANNELS:
    return x
  i = (lax.stop_gradient(x).reshape(-1)[0] * 0).astype(jnp.int32)
  index = (i,) + (0,) * (x.ndim - 1)
  return lax.dynamic_update_slice(x, lax.dynamic_slice(x, index, (1,) * x.ndim), index)
