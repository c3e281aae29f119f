"""The synthetic look-alike scenes: determinism, classes, options, look-alike property."""
import numpy as np
import pytest

from psp_jax.data import synthetic as S


def test_shapes_dtypes_and_determinism():
  img, lab = S.generate_scene(7, (40, 56))
  assert img.shape == (40, 56, 3) and img.dtype == np.uint8
  assert lab.shape == (40, 56) and lab.dtype == np.uint8
  img2, lab2 = S.generate_scene(7, (40, 56))
  np.testing.assert_array_equal(img, img2)
  np.testing.assert_array_equal(lab, lab2)
  img3, _ = S.generate_scene(8, (40, 56))
  assert not np.array_equal(img, img3)


def test_generate_scenes_is_a_stable_stream():
  imgs, labs = S.generate_scenes(6, (32, 32), seed=3)
  assert imgs.shape == (6, 32, 32, 3) and labs.shape == (6, 32, 32)
  imgs4, labs4 = S.generate_scenes(4, (32, 32), seed=3)
  np.testing.assert_array_equal(imgs[:4], imgs4)
  np.testing.assert_array_equal(labs[:4], labs4)
  single = S.generate_scene(S.scene_seed(3, 5), (32, 32))
  np.testing.assert_array_equal(single[1], labs[5])


def test_all_classes_occur_and_palette_matches():
  _, labs = S.generate_scenes(200, (48, 48), seed=0)
  counts = np.bincount(labs.ravel(), minlength=len(S.SYNTHETIC_CLASSES))
  assert len(counts) == len(S.SYNTHETIC_CLASSES)
  assert (counts > 0).all(), dict(zip(S.SYNTHETIC_CLASSES, counts))
  assert S.SYNTHETIC_PALETTE.shape == (len(S.SYNTHETIC_CLASSES), 3)
  assert S.SYNTHETIC_PALETTE.dtype == np.uint8


def test_class_subset_option_reindexes_labels():
  classes = ("water", "road", "boat", "car")
  names, palette = S.synthetic_classes(classes)
  assert names == classes and palette.shape == (4, 3)
  _, labs = S.generate_scenes(60, (32, 32), seed=1, classes=classes)
  assert set(np.unique(labs)) <= {0, 1, 2, 3}
  assert {2, 3} <= set(np.unique(labs))  # boats and cars are drawn


def test_options_are_checked():
  with pytest.raises(TypeError, match="unknown synthetic scene options"):
    S.generate_scene(0, (32, 32), bogus=1)
  with pytest.raises(ValueError, match="unknown synthetic classes"):
    S.generate_scene(0, (32, 32), classes=("sky", "unicorn"))
  with pytest.raises(ValueError, match="at least one ground"):
    S.generate_scene(0, (32, 32), classes=("boat", "car"))


def test_object_size_and_count_options():
  near = dict(far_context_prob=0.0, num_objects=(1, 1))
  _, small = S.generate_scenes(40, (64, 64), seed=0, object_size=(0.1, 0.15), **near)
  _, large = S.generate_scenes(40, (64, 64), seed=0, object_size=(0.6, 0.7), **near)
  grounds = [S.SYNTHETIC_CLASSES.index(g) for g in S.GROUNDS + (S.NEUTRAL_GROUND,)]
  frac = lambda labs: np.mean(~np.isin(labs, grounds))
  assert frac(large) > 4 * frac(small)
  _, none = S.generate_scenes(10, (64, 64), seed=0, num_objects=(0, 0))
  assert np.isin(none, grounds).all()


def test_far_context_objects_take_the_class_of_the_majority_ground():
  _, labs = S.generate_scenes(60, (96, 96), seed=2, far_context_prob=1.0, lookalike_prob=1.0)
  idx = {c: S.SYNTHETIC_CLASSES.index(c) for c in S.SYNTHETIC_CLASSES}
  checked = 0
  for lab in labs:
    assert (lab == idx["sand"]).any()
    area = {g: int((lab == idx[g]).sum()) for g in S.GROUNDS}
    for (major, minor), (cls, twin) in ((("water", "road"), ("boat", "car")), (("road", "water"), ("car", "boat")),
                                        (("sky", "grass"), ("bird", "cow")), (("grass", "sky"), ("cow", "bird"))):
      if (lab == idx[cls]).any():
        assert area[major] > area[minor] > 0, (cls, area)
        assert not (lab == idx[twin]).any()
        checked += 1
  assert checked > 30


def test_lookalikes_share_their_local_appearance():
  """boat/car (and bird/cow) pixels have the same colour statistics; water/road do not."""
  imgs, labs = S.generate_scenes(300, (64, 64), seed=5, noise=0.0)
  idx = {c: S.SYNTHETIC_CLASSES.index(c) for c in S.SYNTHETIC_CLASSES}

  def mean_colour(c):
    return imgs[labs == idx[c]].astype(np.float64).mean(0)

  for a, b in S.LOOKALIKE_GROUPS:
    assert np.abs(mean_colour(a) - mean_colour(b)).max() < 12, (a, b, mean_colour(a), mean_colour(b))
  assert np.abs(mean_colour("water") - mean_colour("road")).max() > 50


def test_every_scene_of_a_stream_is_its_own():
  """Each scene has its own seed: no two of a stream repeat (speed is a benchmark matter)."""
  imgs, labs = S.generate_scenes(100, (64, 64), seed=0)
  assert len({img.tobytes() for img in imgs}) == 100
  assert len({lab.tobytes() for lab in labs}) > 90
