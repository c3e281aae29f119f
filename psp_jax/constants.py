"""Constants shared by every layer of psp_jax (one home for each; imports nothing of the package).

IMAGENET_MEAN / IMAGENET_STD: RGB, on 0-1 values: the normalisation of PSPNet (semseg) and
CascadePSP, and of torchvision's ImageNet backbones.
IGNORE_LABEL: the label value that counts nowhere (loss, metrics); datasets map 'void' to it.
VERSION: the package version (psp_jax.__version__).
TRAIN_RESULT: the file a finished `psp-jax train` writes in its workdir (`psp-jax ablate` skips
runs that have it).
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_LABEL = 255
TRAIN_RESULT = "train_result.json"
VERSION = "0.1.0"
