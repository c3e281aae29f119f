"""Full-width DeepLabV3-ResNet50 (torchvision layout, 21 classes, aux head) against the PyTorch
restatement (tests/torch_reference/deeplab.py): parity of the converted checkpoint at 513x513
and 321x289 (random weights AND random BN statistics), and the eval forward at 513x513 timed
side by side, interleaved in one process (pairs; the median of the pairwise ratio).

  python experiments/deeplab_parity_speed.py --pairs 5 --out experiments/results/deeplab_parity_speed.md

Needs torch (`pip install -e ".[convert]"`). The CPU flags are printed in the header.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
  if str(p) not in sys.path:
    sys.path.insert(0, str(p))


def cpu_line() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
  except OSError:
    return "lscpu unavailable"
  model = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
  flags = next((l.split(":", 1)[1].split() for l in out.splitlines() if l.startswith("Flags")), [])
  isa = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
  return f"{model}; {len(isa)} vector flags: {' '.join(isa)}"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--pairs", type=int, default=5, help="interleaved timing pairs")
  p.add_argument("--threads", type=int, default=2, help="torch threads (XLA uses every core)")
  p.add_argument("--out", type=pathlib.Path, default=None, help="Markdown report")
  args = p.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  from torch_reference.common import randomize_
  from torch_reference.deeplab import TorchvisionDeepLabV3
  from torch_reference.testing import nhwc, rel_err, save_state_dict

  from psp_jax import checkpoint
  from psp_jax.convert import convert_main

  torch.set_num_threads(args.threads)
  net = randomize_(TorchvisionDeepLabV3(classes=21, depth=50, width=64, aux=True), seed=1).eval()
  params_torch = sum(p.numel() for p in net.parameters())
  with tempfile.TemporaryDirectory() as tmp:
    pth = pathlib.Path(tmp) / "deeplabv3_resnet50.pth"
    save_state_dict(net, pth)
    out = str(pathlib.Path(tmp) / "ckpt")
    assert convert_main(["--torch", str(pth), "--model", "deeplabv3-torchvision", "--layers", "50",
                         "--out", out]) == 0
    model, variables = checkpoint.load(out)
  params_ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False, return_aux=True))

  lines = [f"# DeepLabV3-ResNet50 (torchvision layout): parity and eval forward vs PyTorch\n",
           f"`python experiments/deeplab_parity_speed.py --pairs {args.pairs} --threads {args.threads}`; "
           f"CPU: {cpu_line()}; jax {jax.__version__}, torch {torch.__version__}.\n",
           f"Parameters: ours {params_ours:,}, PyTorch restatement {params_torch:,} "
           "(torchvision publishes 42,004,074 with the aux head).\n",
           "| input | main logits rel. error | aux rel. error |", "|---|---:|---:|"]
  for size in ((513, 513), (321, 289)):
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
      ref, ref_aux = net(x)
    got, got_aux = forward(variables, jnp.asarray(nhwc(x)))
    e, ea = rel_err(got, nhwc(ref)), rel_err(got_aux, nhwc(ref_aux))
    lines.append(f"| {size[0]}x{size[1]} | {e:.2e} | {ea:.2e} |")
    print(lines[-1], flush=True)

  x = torch.randn(1, 3, 513, 513, generator=torch.Generator().manual_seed(1))
  xj = jnp.asarray(nhwc(x))
  jax.block_until_ready(forward(variables, xj))  # compiled above for 513: warm
  with torch.no_grad():
    net(x)
  ours, theirs = [], []
  for k in range(args.pairs):
    t = time.perf_counter()
    jax.block_until_ready(forward(variables, xj))
    ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    with torch.no_grad():
      net(x)
    theirs.append(time.perf_counter() - t)
    print(f"pair {k}: ours {ours[-1]:.2f} s, torch {theirs[-1]:.2f} s", flush=True)
  ratios = [b / a for a, b in zip(ours, theirs)]
  lines += ["", "| eval forward 1x3x513x513 | median s | all |", "|---|---:|---|",
            f"| psp_jax | {statistics.median(ours):.2f} | {', '.join(f'{t:.2f}' for t in ours)} |",
            f"| PyTorch restatement | {statistics.median(theirs):.2f} | {', '.join(f'{t:.2f}' for t in theirs)} |",
            "", f"torch time / our time, median of {args.pairs} interleaved pairs: "
            f"**{statistics.median(ratios):.2f}** (range {min(ratios):.2f}-{max(ratios):.2f}; "
            "above 1: we are faster)."]
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
