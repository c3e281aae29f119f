"""psp_jax: PSPNet and CascadePSP in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="psp_jax",
    version="0.1.0",
    description="PSPNet (pyramid scene parsing) and CascadePSP refinement in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["psp_jax", "psp_jax.*"]),
    install_requires=[
        "jax>=0.10,<0.11",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "absl-py>=2.0",
        "numpy>=1.26",
        "tensorflow-datasets>=4.9.8",
        "grain>=0.2.12",
        "array-record>=0.8",
        "opencv-python-headless>=4.9",
        "pillow>=10.0",
        "tensorboardX>=2.6",
        "tqdm>=4.66",
        "matplotlib>=3.8",  # the plots of psp-jax ablate
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "scipy>=1.10"],
        # Only to read SBD's .mat annotations (PASCAL VOC train_aug).
        "voc": ["scipy>=1.10"],
        # PyTorch only for converting the authors' checkpoints (and its tests).
        "convert": ["torch==2.13.0"],
        # Only for the DenseCRF parity test against Krähenbühl's C++ code (builds from source).
        "crf": ["pydensecrf2==1.1"],
    },
    entry_points={"console_scripts": ["psp-jax=psp_jax.main:entry_point"]},
)
