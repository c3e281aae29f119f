"""Real-image fixtures for the CRF tests: CamVid crops from ../shared/data (skipped, with the
reason, where a clone lacks that folder)."""
import pytest

from crf_samples import camvid_pair


@pytest.fixture
def camvid(shared_data):
  return camvid_pair(shared_data)


@pytest.fixture
def crop(camvid):
  """A 40x40 crop of a CamVid val image (road, pavement, building edges) and its labels."""
  image, label = camvid
  return image[100:140, 200:240], label[100:140, 200:240]
