"""psp-jax recompute-bn (psp_jax.recompute_bn): SegNet's BN statistics pass on a tiny
SegNet-Basic, against a hand computation (Caffe's average of batch means and variances, the
latter made unbiased), equal on 1 and 2 devices, and end to end on a training workdir: a new
atomic step that evaluation loads and training resumes from."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax import checkpoint as ckpt_lib
from psp_jax import config_loading
from psp_jax import main as psp_main
from psp_jax.models import build
from psp_jax.models.lrn import local_response_norm
from psp_jax.parallel import make_mesh
from psp_jax.data import train_iterator
from psp_jax.recompute_bn import META_KEY, recompute_batch_stats, recompute_checkpoint
from psp_jax.train.checkpointing import TrainCheckpointer
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state

MODEL = build.build_model({"name": "segnet_basic", "num_classes": 11, "width": 2})


@pytest.fixture(scope="module")
def variables():
  x = jnp.zeros((1, 16, 16, 3))
  return jax.jit(MODEL.init)(jax.random.key(0, impl="rbg"), x)


def _batches(n=3, b=4, hw=16, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.uniform(0, 255, size=(b, hw, hw, 3)).astype(np.float32) for _ in range(n)]


def test_statistics_are_caffes_average_and_device_count_free(variables):
  batches = _batches()
  stats2, n = recompute_batch_stats(MODEL, variables, batches, make_mesh(2))
  stats1, _ = recompute_batch_stats(MODEL, variables, batches, make_mesh(1))
  assert n == 3
  for a, b in zip(jax.tree_util.tree_leaves(stats2), jax.tree_util.tree_leaves(stats1)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # conv1_bn by hand: per batch mean and biased variance of conv1(LRN(x)) over (N, H, W);
  # average over batches; variance times m / (m - 1), m = 4 * 16 * 16
  p = variables["params"]["conv1"]
  means, variances = [], []
  for x in batches:
    y = jax.lax.conv_general_dilated(local_response_norm(jnp.asarray(x)), p["kernel"], (1, 1),
                                     ((3, 3), (3, 3)), dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
    y = np.asarray(y, np.float64)
    means.append(y.mean((0, 1, 2)))
    variances.append(y.var((0, 1, 2)))
  m = 4 * 16 * 16
  np.testing.assert_allclose(stats2["conv1_bn"]["mean"], np.mean(means, 0), rtol=1e-4)
  np.testing.assert_allclose(stats2["conv1_bn"]["var"], np.mean(variances, 0) * m / (m - 1), rtol=1e-4)
  # every BN got new statistics (none keeps the init's mean 0 / var 1)
  for new, old in zip(jax.tree_util.tree_leaves(stats2), jax.tree_util.tree_leaves(variables["batch_stats"])):
    assert np.all(np.asarray(new) != np.asarray(old))


def test_a_model_without_batchnorm_is_refused(variables):
  with pytest.raises(ValueError, match="has no BatchNorm"):
    recompute_batch_stats(MODEL, {"params": variables["params"], "batch_stats": {}}, _batches(1), make_mesh(1))
  with pytest.raises(ValueError, match="no training batch"):
    recompute_batch_stats(MODEL, variables, [], make_mesh(1))


TINY_CONFIG = """
from configs import data, segnet


def get_config(name="tiny"):
  cfg = segnet.segnet_basic_mini()
  cfg.model.width = 2
  cfg.data = data.synthetic()
  cfg.data.synthetic = dict(num_train=10, num_val=2, size=(16, 16), seed=0, options={{}})
  cfg.data.data_dir = {data_dir!r}
  cfg.data.prepare_threads = 1
  cfg.data.update(segnet.SEGNET_INPUT)
  cfg.data.crop_size = (16, 16)
  cfg.train.batch_size = 4
  cfg.train.num_devices = 2
  return cfg
"""


def test_command_writes_a_new_step_that_evaluation_and_resume_use(tmp_path, variables, capsys):
  assert psp_main.COMMANDS["recompute-bn"][:2] == ("psp_jax.recompute_bn", "recompute_bn_main")
  config_file = tmp_path / "tiny.py"  # imports the repository's configs (on sys.path in tests)
  config_file.write_text(TINY_CONFIG.format(data_dir=str(tmp_path / "tfds")))
  cfg = config_loading.load_config(f"{config_file}:tiny").config
  workdir = tmp_path / "run"
  mesh = make_mesh(2)
  opt = make_optimizer(cfg.optim, variables["params"], 10)
  state = create_train_state(variables, opt.tx, jax.random.key(1), mesh).replace(step=jnp.int32(3))
  iterator = train_iterator(cfg.data, 4)
  next(iterator)
  meta = {"format_version": ckpt_lib.FORMAT_VERSION, "model": build.model_config(MODEL)}
  checkpointer = TrainCheckpointer(workdir, enable_async=False, keep_best=False)
  checkpointer.save(state, iterator, meta)
  checkpointer.manager.wait_until_finished()

  assert psp_main.run(["recompute-bn", "--config", f"{config_file}:tiny", "--workdir", str(workdir)]) == 0
  out = capsys.readouterr().out
  assert "BN statistics of step 3 recomputed over 2 batches of 4 (8 images of split 'train'); saved as step 4" in out
  loaded_model, loaded = ckpt_lib.load(workdir)  # evaluate's "latest" is the new step
  assert ckpt_lib.resolve(workdir)[1] == 4 and isinstance(loaded_model, type(MODEL))
  assert ckpt_lib.read_meta(workdir)[META_KEY] == {"from_step": 3, "batches": 2, "images": 8, "batch_size": 4,
                                                   "split": "train"}
  for a, b in zip(jax.tree_util.tree_leaves(loaded["params"]), jax.tree_util.tree_leaves(variables["params"])):
    np.testing.assert_array_equal(a, b)
  images = [b["image"] for b in train_iterator(cfg.data, 4, num_epochs=1)]
  expected, _ = recompute_batch_stats(MODEL, variables, images, mesh)
  for a, b in zip(jax.tree_util.tree_leaves(loaded["batch_stats"]), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # resume: the whole training state (step 3's) and the data position restore from step 4
  fresh = train_iterator(cfg.data, 4)
  restored = TrainCheckpointer(workdir, enable_async=False, keep_best=False).restore(state, mesh, fresh)
  assert int(restored.step) == 3
  np.testing.assert_array_equal(next(fresh)["index"], next(iterator)["index"])
  # a workdir without checkpoints is named
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="checkpoints does not exist"):
    recompute_checkpoint(cfg, tmp_path / "empty")
