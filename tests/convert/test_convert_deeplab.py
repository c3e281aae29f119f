"""DeepLab / VGG conversion: parity with our PyTorch restatements (random weights and random BN
statistics), key maps, LargeFOV decimation, strictness."""
from __future__ import annotations

import numpy as np
import pytest
from torch_reference.testing import TORCH_SKIP_REASON, nchw, nhwc, rel_err, save_state_dict

from psp_jax import checkpoint
from psp_jax.convert import ConversionError, convert_checkpoint, convert_main


def _torch():
  torch = pytest.importorskip("torch", reason=TORCH_SKIP_REASON)
  torch.set_num_threads(2)
  return torch


def _convert(tmp_path, pth, model, *extra) -> str:
  out = str(tmp_path / "ckpt")
  assert convert_main(["--torch", str(pth), "--model", model, "--out", out, *extra]) == 0
  return out


def _apply(ckpt, x_nhwc, **kw):
  import jax
  import jax.numpy as jnp
  model, variables = checkpoint.load(ckpt)
  return model, jax.jit(lambda v, x: model.apply(v, x, train=False, **kw))(variables, jnp.asarray(x_nhwc))


def test_torchvision_deeplabv3_parity_main_and_aux(tmp_path, capsys):
  torch = _torch()
  from torch_reference.common import randomize_
  from torch_reference.deeplab import TorchvisionDeepLabV3
  net = randomize_(TorchvisionDeepLabV3(classes=5, depth=50, width=8, aux=True, aspp_features=16),
                   seed=1).eval()
  pth = tmp_path / "deeplabv3_resnet50.pth"
  save_state_dict(net, pth)
  ckpt = _convert(tmp_path, pth, "deeplabv3-torchvision", "--layers", "50")
  assert "missing 0; unused 0; shape-mismatched 0" in capsys.readouterr().out
  meta = checkpoint.read_meta(ckpt)
  assert meta["model"]["name"] == "deeplabv3" and meta["model"]["flavour"] == "torchvision"
  assert meta["model"]["aux"] is True and meta["model"]["rates"] == [12, 24, 36]
  assert meta["preprocessing"]["channel_order"] == "RGB" and meta["preprocessing"]["align_corners"] is False
  for size in ((321, 289), (513, 513)):
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
      ref, ref_aux = net(x)
    _, (out, aux) = _apply(ckpt, nhwc(x), return_aux=True)
    err, err_aux = rel_err(out, nhwc(ref)), rel_err(aux, nhwc(ref_aux))
    print(f"deeplabv3-torchvision {size}: main {err:.3g}, aux {err_aux:.3g}")
    assert err <= 1e-4 and err_aux <= 1e-4


def test_deeplab_pytorch_v2_msc_parity(tmp_path, capsys):
  """kazuto1011/deeplab-pytorch's MSC(DeepLabV2) (keys under `base.`): every scale's logits and
  the max fusion, at an odd size."""
  torch = _torch()
  from torch_reference.common import randomize_
  from torch_reference.deeplab import KazutoDeepLabV2
  net = randomize_(KazutoDeepLabV2(classes=4, depth=50, width=4, rates=(6, 12, 18, 24)), seed=2).eval()
  pth = tmp_path / "deeplabv2_msc.pth"
  save_state_dict(net, pth)
  ckpt = _convert(tmp_path, pth, "deeplabv2-resnet101")
  assert "missing 0; unused 0; shape-mismatched 0" in capsys.readouterr().out
  meta = checkpoint.read_meta(ckpt)
  assert meta["model"]["depth"] == 50 and meta["model"]["scales"] == [1.0, 0.75, 0.5]
  assert meta["preprocessing"]["mean"] == [104.008, 116.669, 122.675]
  assert meta["preprocessing"]["channel_order"] == "BGR"
  x = torch.randn(1, 3, 321, 289, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    full, (half, three_quarter), fused = net.outputs(x)
  _, out = _apply(ckpt, nhwc(x), native=True)
  for name, ref in (("scale_1", full), ("scale_0.75", three_quarter), ("scale_0.5", half),
                    ("max", fused)):
    err = rel_err(out[name], nhwc(ref))
    print(f"deeplabv2 MSC {name} {tuple(ref.shape[2:])}: {err:.3g}")
    assert out[name].shape[1:3] == tuple(ref.shape[2:]) and err <= 1e-4


def test_deeplab_pytorch_v2_resnet101_keys_all_map():
  """The ResNet-101 port's 1,000-odd keys all have a home (no forward: a key-map check)."""
  _torch()
  from psp_jax.convert import deeplab_targets, layouts
  from torch_reference.deeplab import KazutoDeepLabV2
  sd = {k: v.numpy() for k, v in KazutoDeepLabV2(classes=21, depth=101, width=4).state_dict().items()}
  prepared = deeplab_targets.prepare("deeplabv2-resnet101", sd)
  net, layout = deeplab_targets.build_target("deeplabv2-resnet101", prepared)
  assert net.depth == 101 and net.num_classes == 21
  converted = layouts.convert_state_dict(prepared, layout)
  assert not converted.unknown
  target = checkpoint.init_variables(net, abstract=True)
  import jax
  n_target = len(jax.tree.leaves(target))
  assert len(converted.arrays) == n_target


def test_torchvision_vgg16_parity_and_largefov_decimation(tmp_path):
  torch = _torch()
  import jax
  from torch_reference.common import randomize_
  from torch_reference.deeplab import TorchvisionVGG16
  from psp_jax.models.deeplab import DeepLabV1
  net = randomize_(TorchvisionVGG16(width=8, fc=64, classes=10), seed=3).eval()
  with torch.no_grad():
    for m in net.classifier:
      if isinstance(m, torch.nn.Linear):
        m.weight.normal_(0, m.in_features ** -0.5)
        m.bias.normal_(0, 0.1)
  pth = tmp_path / "vgg16.pth"
  save_state_dict(net, pth)
  ckpt = _convert(tmp_path, pth, "vgg16-torchvision")
  x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    feats, logits = net(x)
  _, out = _apply(ckpt, nhwc(x))
  assert rel_err(out["pool5"], nhwc(feats)) <= 1e-4
  assert rel_err(out["logits"][:, 3, 3], logits.numpy()) <= 1e-4  # the 7x7 map's centre

  lf = _convert(tmp_path / "lf", pth, "vgg16-torchvision", "--vgg-fc", "largefov")
  _, v = checkpoint.load(lf)
  fc6 = net.classifier[0].weight.detach().numpy().reshape(64, 64, 7, 7)[::4][:, :, ::3, ::3]
  np.testing.assert_array_equal(np.asarray(v["params"]["head"]["fc6"]["kernel"]), fc6.transpose(2, 3, 1, 0))
  fc7 = net.classifier[3].weight.detach().numpy()[::4, ::4]
  np.testing.assert_array_equal(np.asarray(v["params"]["head"]["fc7"]["kernel"])[0, 0], fc7.T)
  # The decimated checkpoint initialises DeepLab v1: convs, fc6 and fc7 load; fc8 (10 vs 21) not.
  target = checkpoint.init_variables(DeepLabV1(21, width=8, fc_features=16), abstract=True)
  target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), target)
  _, report = checkpoint.init_from_checkpoint(target, lf, log=None)
  assert {n for n in report.loaded if "/head/" in n} == {
      "params/head/fc6/kernel", "params/head/fc6/bias", "params/head/fc7/kernel", "params/head/fc7/bias"}
  assert sum("/backbone/" in n for n in report.loaded) == 26
  assert {n for n, _ in report.reinitialized} == {"params/head/fc8/kernel", "params/head/fc8/bias"}


def test_wrong_layouts_are_named(tmp_path):
  torch = _torch()
  from torch_reference.deeplab import TorchvisionDeepLabV3
  sd = TorchvisionDeepLabV3(classes=3, depth=50, width=4, aux=False).state_dict()
  torch.save(sd, tmp_path / "v3.pth")
  with pytest.raises(ConversionError, match=r"key 'layer1.conv1.conv.weight' not found: this file "
                                            r"does not look like a deeplab-pytorch DeepLabV2"):
    convert_checkpoint(tmp_path / "v3.pth", "deeplabv2-resnet101", tmp_path / "out")
  del sd["classifier.4.weight"]
  torch.save(sd, tmp_path / "v3_broken.pth")
  with pytest.raises(ConversionError, match="key 'classifier.4.weight' not found"):
    convert_checkpoint(tmp_path / "v3_broken.pth", "deeplabv3-torchvision", tmp_path / "out")
  sd = TorchvisionDeepLabV3(classes=3, depth=50, width=4, aux=False).state_dict()
  sd["classifier.0.project.0.weight"] = sd["classifier.0.project.0.weight"][:, :8]
  torch.save(sd, tmp_path / "v3_shape.pth")
  with pytest.raises(ConversionError, match=r"classifier.0.project.0.weight: checkpoint shape "
                                            r"\(256, 8, 1, 1\), model expects \(256, 1280, 1, 1\)"):
    convert_checkpoint(tmp_path / "v3_shape.pth", "deeplabv3-torchvision", tmp_path / "out")
  assert not (tmp_path / "out").exists()
