"""`checkpoint.init_variables` compiles the initialisation at LLVM -O2 on CPU (much faster
than the default -O3): the values must be bit-identical to the default compile's."""
import jax
import numpy as np

from psp_jax import checkpoint as ckpt_lib
from psp_jax.models import build


def test_fast_init_compile_gives_the_default_compile_values():
  family = build.get_family("resnet")
  model = build.build_model(dict(family.tiny, name="resnet"))
  fast = ckpt_lib.init_variables(model, jax.random.PRNGKey(3))
  args, kwargs = ckpt_lib.dummy_inputs(model)
  default = jax.jit(lambda: model.init(jax.random.PRNGKey(3), *args, **kwargs))()
  flat_fast = jax.tree_util.tree_leaves_with_path({c: fast[c] for c in ("params", "batch_stats")})
  flat_default = dict(jax.tree_util.tree_leaves_with_path(
      {c: dict(default.get(c, {})) for c in ("params", "batch_stats")}))
  assert len(flat_fast) == len(flat_default) > 20
  for path, value in flat_fast:
    np.testing.assert_array_equal(np.asarray(value), np.asarray(flat_default[path]),
                                  err_msg=jax.tree_util.keystr(path))


def test_init_inside_a_trace_still_works():
  """eval_shape / jit around init_variables (tests and tools build abstract states so)."""
  model = build.build_model(dict(build.get_family("resnet").tiny, name="resnet"))
  shapes = jax.eval_shape(lambda: ckpt_lib.init_variables(model, jax.random.key(0)))
  assert jax.tree.structure(shapes) == jax.tree.structure(
      ckpt_lib.init_variables(model, jax.random.key(0), abstract=True))
