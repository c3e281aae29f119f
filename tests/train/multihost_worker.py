"""One process of the multi-host test: train a tiny PSPNet for a few steps and print the losses.

  python multihost_worker.py LOCAL_DEVICES [COORDINATOR NUM_PROCESSES PROCESS_ID]

Without a coordinator it runs alone (the single-process reference). Every process builds the
same global batch and feeds only its own slice, as a data loader on each host would.
"""
import json
import os
import sys

local_devices = int(sys.argv[1])
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local_devices}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

if len(sys.argv) > 2:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(sys.argv[2], num_processes=int(sys.argv[3]),
                             process_id=int(sys.argv[4]))

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from psp_jax.checkpoint import init_variables  # noqa: E402
from psp_jax.models import PSPNet  # noqa: E402
from psp_jax.parallel import make_mesh, shard_batch  # noqa: E402
from psp_jax.train.optim import make_optimizer  # noqa: E402
from psp_jax.train.state import create_train_state  # noqa: E402
from psp_jax.train.step import make_train_step  # noqa: E402

model = PSPNet(4, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2), dropout=0.1)
variables = init_variables(model, jax.random.key(0))
cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.05, momentum=0.9, weight_decay=1e-4,
                                     schedule="poly", lr_multipliers={"head": 10.0}))
opt = make_optimizer(cfg, variables["params"], 10)
mesh = make_mesh()
state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)
step = make_train_step(model, opt, mesh, num_classes=4)
rng = np.random.default_rng(0)
per_process = 8 // jax.process_count()
lo = jax.process_index() * per_process
losses = []
for _ in range(3):
  images = rng.normal(size=(8, 33, 33, 3)).astype(np.float32)
  labels = rng.integers(0, 4, size=(8, 33, 33)).astype(np.int32)
  batch = shard_batch({"image": images[lo:lo + per_process], "label": labels[lo:lo + per_process]}, mesh)
  state, metrics = step(state, batch["image"], batch["label"])
  losses.append(float(metrics["loss"]))
print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(), "losses": losses}))
