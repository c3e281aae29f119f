"""The tiny `psp-jax` command lines of the reliability tests (imported by conftest and tests)."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "configs/pspnet.py:demo"
STEPS_A = 2


def tiny(data_dir) -> list[str]:
  """configs/pspnet.py:demo shrunk to seconds: width 8, 33x33 synthetic scenes, batch 8."""
  return [f"--config.data.data_dir={data_dir}", "--config.model.width=8",
          "--config.model.head_features=16", "--config.model.aux_features=8",
          "--config.model.bins=(1,2)", "--config.data.synthetic.num_train=16",
          "--config.data.synthetic.num_val=2", "--config.data.synthetic.size=(33,33)",
          "--config.data.crop_size=(33,33)", "--config.data.eval_pad_size=(33,33)",
          "--config.data.read_threads=1", "--config.data.prepare_threads=1",
          "--config.train.batch_size=8", "--config.train.checkpoint_every=1",
          "--config.train.keep_checkpoints=5", "--config.train.log_every=1",
          "--config.eval.every=0", "--config.eval.crop_size=(33,33)", "--config.eval.base_size=33",
          "--config.eval.window_batch=1", "--config.eval.max_images=2", "--config.eval.log_images=0"]
