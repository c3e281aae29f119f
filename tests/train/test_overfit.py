"""End to end: a small PSPNet memorises one fixed batch of synthetic scenes on the CPU."""
import jax
import ml_collections
import numpy as np

from psp_jax.checkpoint import init_variables
from psp_jax.data.synthetic import SYNTHETIC_CLASSES, generate_scenes
from psp_jax.models import PSPNet
from psp_jax.parallel import make_mesh
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_train_step

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
MAX_STEPS = 150


def test_small_pspnet_overfits_a_fixed_batch():
  images, labels = generate_scenes(8, (65, 65), seed=3)
  images = (images.astype(np.float32) - MEAN) / STD
  labels = labels.astype(np.int32)
  num_classes = len(SYNTHETIC_CLASSES)
  model = PSPNet(num_classes, depth=18, stem="classic", width=16, head_features=32,
                 aux_features=16, dropout=0.0)
  variables = init_variables(model, jax.random.key(0))
  cfg = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.05, momentum=0.9, weight_decay=1e-4, schedule="poly", power=0.9,
      lr_multipliers={"ppm": 10.0, "head": 10.0, "aux_head": 10.0}))
  opt = make_optimizer(cfg, variables["params"], MAX_STEPS)
  mesh = make_mesh(8)
  state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)
  step = make_train_step(model, opt, mesh, num_classes=num_classes)
  forward = jax.jit(model.apply)
  first_loss = None
  for i in range(MAX_STEPS):
    state, metrics = step(state, images, labels)
    if first_loss is None:
      first_loss = float(metrics["loss"])
    if i % 10 == 9:
      # Accuracy of the inference forward (BN running statistics), not the train-mode one.
      acc = float((np.asarray(forward(state.variables, images)).argmax(-1) == labels).mean())
      if acc >= 0.95:
        break
  print(f"steps={i + 1} train_acc={float(metrics['pixel_acc']):.3f} eval_acc={acc:.3f} "
        f"loss {first_loss:.3f} -> {float(metrics['loss']):.3f}")
  assert acc >= 0.95
  assert float(metrics["pixel_acc"]) >= 0.95
  assert float(metrics["loss"]) < 0.25 * first_loss
