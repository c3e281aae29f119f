"""The dataset a data config names, prepared and opened: one of the psp_jax TFDS builders
(psp_jax/data/builders, no TensorFlow needed) or a TFDS catalog dataset (`data.name =
"tfds:<catalog name>"`, psp_jax/data/builders/catalog.py, needs TensorFlow).

  prepare(data_cfg, force=False)    prepare once (a catalog dataset: on first open)
  open_dataset(data_cfg)            prepared splits as random-access sources (PreparedDataset)

The builders and the catalog path know nothing of each other; this module chooses.
"""
from __future__ import annotations

from psp_jax.data.prepared import PreparedDataset, get

CATALOG_PREFIX = "tfds:"


def is_catalog(data_cfg) -> bool:
  name = get(data_cfg, "name", "")
  return isinstance(name, str) and name.startswith(CATALOG_PREFIX)


def prepare(data_cfg, *, force: bool = False, verbose: bool = True):
  """Prepare the dataset of `data_cfg` (see psp_jax.data.builders.prepare); a catalog dataset
  is prepared by TFDS when first opened."""
  if is_catalog(data_cfg):
    return open_dataset(data_cfg).builder
  from psp_jax.data import builders  # pylint: disable=import-outside-toplevel
  return builders.prepare(data_cfg, force=force, verbose=verbose)


def open_dataset(data_cfg, *, prepare_if_needed: bool = True) -> PreparedDataset:
  """Random-access sources of every split, preparing the dataset if needed."""
  if is_catalog(data_cfg):
    from psp_jax.data.builders.catalog import open_catalog  # pylint: disable=import-outside-toplevel
    return open_catalog(data_cfg)
  from psp_jax.data import builders  # pylint: disable=import-outside-toplevel
  return builders.open_dataset(data_cfg, prepare_if_needed=prepare_if_needed)
