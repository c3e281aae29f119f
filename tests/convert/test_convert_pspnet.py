"""semseg PSPNet / ImageNet ResNet conversion: parity with the PyTorch re-statement, strictness."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from torch_reference.testing import (TORCH_SKIP_REASON, nhwc, random_variables, rel_err,
                                     save_state_dict)

torch = pytest.importorskip("torch", reason=TORCH_SKIP_REASON)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from torch_reference.common import randomize_  # noqa: E402
from torch_reference.semseg_pspnet import DeepBaseResNet, SemsegPSPNet, TorchvisionResNet  # noqa: E402

from psp_jax import checkpoint  # noqa: E402
from psp_jax.convert import ConversionError, convert_checkpoint, convert_main  # noqa: E402
from psp_jax.models.pspnet import PSPNet  # noqa: E402
from psp_jax.models.refinement import RefinementModule  # noqa: E402

torch.set_num_threads(2)
HAVE_CLASSES = importlib.util.find_spec("psp_jax.data.classes") is not None


def _convert(tmp_path, pth, model, *extra) -> str:
  out = str(tmp_path / "ckpt")
  assert convert_main(["--torch", str(pth), "--model", model, "--out", out, *extra]) == 0
  return out


def _run_pspnet(ckpt, x_nhwc):
  model, variables = checkpoint.load(ckpt)
  return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.asarray(x_nhwc)))


def test_pspnet50_parity_473(tmp_path, capsys):
  """Full PSPNet-50, 150 classes, semseg's {'state_dict': {'module.'...}} checkpoint, 473x473."""
  net = randomize_(SemsegPSPNet(classes=150, depth=50), seed=1).eval()
  assert len(net.state_dict()) == 370
  pth = tmp_path / "pspnet50.pth"
  save_state_dict(net, pth, prefix="module.", wrap=True)
  x = torch.randn(1, 3, 473, 473, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    ref = nhwc(net(x))
  ckpt = _convert(tmp_path, pth, "pspnet", *(["--dataset", "ade20k"] if HAVE_CLASSES else []))
  assert "loaded 309 arrays (49.18 M parameters); missing 0; unused 0; shape-mismatched 0; ignored 61" \
      in capsys.readouterr().out
  meta = checkpoint.read_meta(ckpt)
  assert meta["model"]["name"] == "pspnet" and meta["model"]["num_classes"] == 150
  assert meta["model"]["depth"] == 50 and meta["model"]["aux"] is True
  assert meta["source"]["layout"] == "semseg-pspnet"
  assert meta["preprocessing"]["align_corners"] is True
  if HAVE_CLASSES:
    assert meta["classes"]["dataset"] == "ade20k" and len(meta["classes"]["palette"]) == 150
  out = _run_pspnet(ckpt, nhwc(x))
  assert out.shape == (1, 473, 473, 150)
  err = rel_err(out, ref)
  print(f"PSPNet-50 473x473 max|diff|/max|ref| = {err:.3g}")
  assert err <= 1e-4


def test_small_pspnet_bare_state_dict_and_aux(tmp_path):
  """A bare state_dict (no prefix, no wrapper), narrow model: logits and aux logits match."""
  net = randomize_(SemsegPSPNet(classes=5, depth=50, width=8), seed=2).eval()
  pth = tmp_path / "small.pth"
  save_state_dict(net, pth)
  x = torch.randn(2, 3, 57, 41, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    ref = nhwc(net(x))
    feats = net.layer3(net.layer2(net.layer1(net.layer0(x))))
    aux_ref = nhwc(torch.nn.functional.interpolate(net.aux(feats), (57, 41), mode="bilinear",
                                                   align_corners=True))
  ckpt = _convert(tmp_path, pth, "pspnet")
  model, variables = checkpoint.load(ckpt)
  assert model.width == 8 and model.num_classes == 5
  out, aux = model.apply(variables, jnp.asarray(nhwc(x)), train=False, return_aux=True)
  assert rel_err(out, ref) <= 1e-4
  assert rel_err(aux, aux_ref) <= 1e-4


def test_key_counts_of_the_references():
  """The re-statements have the published state_dict sizes (our models' counts are checked
  without torch in tests/models)."""
  sd = SemsegPSPNet(classes=150, depth=50).state_dict()
  assert len(sd) == 370
  n_params = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var",
                                                                          "num_batches_tracked")))
  assert round(n_params / 1e6, 2) == 49.18
  jax_params = checkpoint.init_variables(PSPNet(num_classes=150), abstract=True)["params"]
  assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(jax_params)) == n_params


def _small_pth(tmp_path, classes=5, **save_kw):
  net = randomize_(SemsegPSPNet(classes=classes, depth=50, width=8), seed=3).eval()
  pth = tmp_path / "small.pth"
  save_state_dict(net, pth, **save_kw)
  return net, pth


def test_shape_mismatch_names_key_and_shapes(tmp_path, capsys):
  _, pth = _small_pth(tmp_path)
  rc = convert_main(["--torch", str(pth), "--model", "pspnet", "--num-classes", "7",
                     "--out", str(tmp_path / "out")])
  assert rc == 1
  err = capsys.readouterr().err
  assert "cls.4.weight: checkpoint shape (5, 64, 1, 1), model expects (7, 64, 1, 1)" in err
  assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_key_is_an_error(tmp_path, capsys):
  net, _ = _small_pth(tmp_path)
  sd = net.state_dict()
  del sd["layer2.1.bn2.running_var"]
  torch.save(sd, tmp_path / "missing.pth")
  with pytest.raises(ConversionError, match=r"1 model array\(s\) not in the checkpoint.*layer2_1/bn2/var"):
    convert_checkpoint(tmp_path / "missing.pth", "pspnet", tmp_path / "out")
  assert "missing 1" in capsys.readouterr().out


def test_unknown_keys_are_reported(tmp_path, capsys):
  _, pth = _small_pth(tmp_path, prefix="module.", extra={"module.extra_head.weight": torch.ones(3, 3, 1, 1)})
  _convert(tmp_path, pth, "pspnet")
  out = capsys.readouterr().out
  assert "unused 1;" in out and "unused key: extra_head.weight" in out


def test_wrong_model_flag_and_non_state_dict(tmp_path, capsys):
  _, pth = _small_pth(tmp_path)
  assert convert_main(["--torch", str(pth), "--model", "cascadepsp", "--out", str(tmp_path / "a")]) == 1
  assert "does not look like a CascadePSP checkpoint" in capsys.readouterr().err
  assert convert_main(["--torch", str(pth), "--model", "resnet-deepbase", "--out", str(tmp_path / "b")]) == 1
  assert "use --model pspnet" in capsys.readouterr().err
  torch.save({"epoch": 1, "weights": [1, 2]}, tmp_path / "junk.pth")
  assert convert_main(["--torch", str(tmp_path / "junk.pth"), "--model", "pspnet",
                       "--out", str(tmp_path / "c")]) == 1
  assert "is not a state_dict" in capsys.readouterr().err


def test_overwrite_needs_force_and_class_names(tmp_path, capsys):
  _, pth = _small_pth(tmp_path)
  ckpt = _convert(tmp_path, pth, "pspnet")
  assert convert_main(["--torch", str(pth), "--model", "pspnet", "--out", ckpt]) == 1
  assert "--force" in capsys.readouterr().err
  # A failing --force run leaves the existing checkpoint untouched.
  assert convert_main(["--torch", str(pth), "--model", "pspnet", "--num-classes", "9", "--out", ckpt,
                       "--force"]) == 1
  assert checkpoint.read_meta(ckpt)["model"]["num_classes"] == 5
  names = tmp_path / "classes.json"
  names.write_text(json.dumps({"names": list("abcde"), "palette": [[i, 0, 0] for i in range(5)]}))
  assert convert_main(["--torch", str(pth), "--model", "pspnet", "--out", ckpt, "--force",
                       "--classes", str(names)]) == 0
  assert checkpoint.read_meta(ckpt)["classes"]["names"] == list("abcde")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "classes.json", "small.pth"]
  if HAVE_CLASSES:
    assert convert_main(["--torch", str(pth), "--model", "pspnet", "--out", ckpt, "--force",
                         "--dataset", "camvid"]) == 1
    assert "11 class names for a 5-class model" in capsys.readouterr().err
  names.write_text(json.dumps(["a", "b"]))
  assert convert_main(["--torch", str(pth), "--model", "pspnet", "--out", ckpt, "--force",
                       "--classes", str(names)]) == 1
  assert "2 class names for a 5-class model" in capsys.readouterr().err


def test_deepbase_resnet_backbone_checkpoint_and_init(tmp_path):
  """resnet-deepbase -> a 'resnet' checkpoint whose features match torch; it initialises the
  backbone of a PSPNet with another class count (heads stay fresh)."""
  net = randomize_(DeepBaseResNet(depth=50, width=8), seed=4).eval()
  pth = tmp_path / "resnet50_v2.pth"
  save_state_dict(net, pth)
  ckpt = _convert(tmp_path, pth, "resnet-deepbase")
  meta = checkpoint.read_meta(ckpt)
  assert meta["model"] == {"name": "resnet", "depth": 50, "stem": "deep", "output_stride": 8,
                           "dilation_pattern": "semseg", "width": 8, "layout": "torchvision",
                           "multi_grid": [], "dtype": "float32"}
  x = torch.randn(1, 3, 45, 37, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    ref = nhwc(net(x))
  model, variables = checkpoint.load(ckpt)
  assert rel_err(model.apply(variables, jnp.asarray(nhwc(x)))["layer4"], ref) <= 1e-4

  target = random_variables(PSPNet(num_classes=3, width=8), seed=1)
  new, report = checkpoint.init_from_checkpoint(target, ckpt, log=None)
  assert report.target_prefix == "backbone" and not report.unused
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
    got = new[path[0].key]["backbone"]
    for k in path[1:]:
      got = got[k.key]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(leaf))
  np.testing.assert_array_equal(np.asarray(new["params"]["head"]["classifier"]["kernel"]),
                                np.asarray(target["params"]["head"]["classifier"]["kernel"]))


def test_torchvision_resnet_into_cascadepsp_extra_channels_zero(tmp_path):
  net = randomize_(TorchvisionResNet(depth=50, width=8), seed=5).eval()
  pth = tmp_path / "resnet50.pth"
  save_state_dict(net, pth)
  ckpt = _convert(tmp_path, pth, "resnet-torchvision")
  assert checkpoint.read_meta(ckpt)["model"]["stem"] == "classic"
  target = random_variables(RefinementModule(width=8), seed=2)
  new, report = checkpoint.init_from_checkpoint(target, ckpt, log=None)
  assert report.extended == ["params/feats/conv1/kernel: 3 -> 6 input channels"]
  kernel = np.asarray(new["params"]["feats"]["conv1"]["kernel"])
  np.testing.assert_array_equal(kernel[:, :, :3], net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(kernel[:, :, 3:], 0.0)
  # Everything outside the backbone is re-initialised.
  assert {p.split("/")[1] for p, _ in report.reinitialized} == {
      "psp", "up_1", "up_2", "up_3", "final_28_0", "final_28_2", "final_56_0", "final_56_2",
      "final_11", "final_21"}
