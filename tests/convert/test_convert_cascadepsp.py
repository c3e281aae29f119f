"""CascadePSP conversion: the full three-pass refinement module against the PyTorch re-statement."""
from __future__ import annotations

import numpy as np
import pytest
from torch_reference.testing import TORCH_SKIP_REASON, nchw, nhwc, rel_err, save_state_dict

torch = pytest.importorskip("torch", reason=TORCH_SKIP_REASON)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from torch_reference.cascadepsp import RefinementModule as TorchRefinement  # noqa: E402
from torch_reference.common import randomize_  # noqa: E402

from psp_jax import checkpoint  # noqa: E402
from psp_jax.convert import convert_main  # noqa: E402
from psp_jax.models.refinement import OUTPUT_KEYS, pad_to_multiple  # noqa: E402

torch.set_num_threads(2)


def _reference(width: int, seed: int):
  net = randomize_(TorchRefinement(width=width), seed=seed).eval()
  with torch.no_grad():  # logits O(1) so that the tanh maps fed to later passes are not saturated
    for head in (net.final_28, net.final_56):
      head[2].weight.mul_(1e-3)
      head[2].bias.zero_()
  return net


def _inputs(n, h, w, seed):
  g = torch.Generator().manual_seed(seed)
  image = torch.randn(n, 3, h, w, generator=g)
  seg = (torch.rand(n, 1, h, w, generator=g) > 0.5).float() * 2 - 1
  return nhwc(image), nhwc(seg)


@pytest.fixture(scope="module")
def cascadepsp(tmp_path_factory):
  """The published-size module, random weights and BN statistics, saved like the official file
  (a bare state_dict with `module.` prefixes), converted once."""
  tmp = tmp_path_factory.mktemp("cascadepsp")
  net = _reference(64, seed=11)
  assert len(net.state_dict()) == 426
  save_state_dict(net, tmp / "model", prefix="module.")
  out = str(tmp / "ckpt")
  assert convert_main(["--torch", str(tmp / "model"), "--model", "cascadepsp", "--out", out]) == 0
  model, variables = checkpoint.load(out)
  return net, model, variables, out


def _compare(net, model, variables, image, seg, label):
  """Pads like the official inference (image 0, mask -1, bottom/right to a multiple of 8),
  runs both, crops, compares every output."""
  image_p, (h, w) = pad_to_multiple(image, 8, 0.0)
  seg_p, _ = pad_to_multiple(seg, 8, -1.0)
  with torch.no_grad():
    ref = {k: nhwc(v)[:, :h, :w] for k, v in net(nchw(image_p), nchw(seg_p)).items()}
  out = jax.jit(lambda v, x, s: model.apply(v, x, s, train=False))(
      variables, jnp.asarray(image_p), jnp.asarray(seg_p))
  assert sorted(out) == sorted(OUTPUT_KEYS) == sorted(ref)
  errs = {k: rel_err(np.asarray(out[k])[:, :h, :w], ref[k]) for k in OUTPUT_KEYS}
  print(f"CascadePSP {label}: " + ", ".join(f"{k} {e:.3g}" for k, e in errs.items()))
  assert max(errs.values()) <= 1e-4, errs


def test_meta(cascadepsp):
  _, model, variables, ckpt = cascadepsp
  meta = checkpoint.read_meta(ckpt)
  assert meta["model"] == {"name": "cascadepsp", "depth": 50, "width": 64, "dtype": "float32",
                           "passes": 3, "seg_skip": 0.0}  # the published module: no input skip
  assert meta["source"]["layout"] == "cascadepsp"
  assert meta["source"]["counts"]["loaded"] + meta["source"]["counts"]["ignored"] == 426
  assert meta["preprocessing"]["align_corners"] is False
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))
  assert round(n / 1e6, 2) == 67.68


def test_parity_224(cascadepsp):
  net, model, variables, _ = cascadepsp
  image, seg = _inputs(1, 224, 224, seed=0)
  _compare(net, model, variables, image, seg, "224x224")


def test_parity_odd_size_padded(cascadepsp):
  net, model, variables, _ = cascadepsp
  image, seg = _inputs(1, 227, 301, seed=1)
  _compare(net, model, variables, image, seg, "227x301 (padded to 232x304)")


def test_parity_entering_at_pass_2_and_3(tmp_path):
  """The local step enters at pass 3 with given maps (and pass 2 with one map)."""
  net = _reference(16, seed=12)
  save_state_dict(net, tmp_path / "small.pth", prefix="module.")
  assert convert_main(["--torch", str(tmp_path / "small.pth"), "--model", "cascadepsp",
                       "--out", str(tmp_path / "ckpt")]) == 0
  model, variables = checkpoint.load(tmp_path / "ckpt")
  image, seg = _inputs(2, 48, 40, seed=2)
  rng = np.random.default_rng(0)
  s8 = np.tanh(rng.standard_normal(seg.shape)).astype(np.float32)
  s4 = np.tanh(rng.standard_normal(seg.shape)).astype(np.float32)
  for maps in ((s8,), (s8, s4)):
    with torch.no_grad():
      ref = {k: nhwc(v) for k, v in net(nchw(image), nchw(seg), *map(nchw, maps)).items()}
    out = jax.jit(model.apply)(variables, jnp.asarray(image), jnp.asarray(seg), *map(jnp.asarray, maps))
    assert sorted(out) == sorted(ref)
    for k in ref:
      assert rel_err(out[k], ref[k]) <= 1e-4, k
