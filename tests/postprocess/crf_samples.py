"""CamVid samples and noisy logits for the CRF tests."""
import cv2
import numpy as np

NUM_CLASSES = 11  # CamVid's; label 11 is 'unlabelled'


def camvid_pair(shared_data, name="0016E5_07959.png"):
  image = cv2.imread(str(shared_data / "camvid" / "val" / name), cv2.IMREAD_COLOR)
  label = cv2.imread(str(shared_data / "camvid" / "valannot" / name), cv2.IMREAD_GRAYSCALE)
  assert image is not None and label is not None, f"cannot read CamVid val {name}"
  return np.ascontiguousarray(image[..., ::-1]), label


def noisy_logits(label: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
  """Logits that favour the true class by 1 plus Gaussian noise (unlabelled -> class 10)."""
  onehot = np.eye(NUM_CLASSES, dtype=np.float32)[np.minimum(label, NUM_CLASSES - 1)]
  rng = np.random.default_rng(seed)
  return (onehot + rng.normal(0.0, noise, onehot.shape)).astype(np.float32)
