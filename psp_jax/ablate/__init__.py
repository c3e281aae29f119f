"""`psp-jax ablate`: ablation tables as data (experiments/*.py), run and collected.

  table.py      load and validate a table file (the format is documented there)
  overrides.py  check a row's config overrides against the base config; CLI flag text
  plan.py       shared training runs, one evaluation per row and seed, the workdir layout
  runner.py     run the plan as subprocesses: skip finished, resume interrupted, report failures
  collect.py    mean / std / n over seeds per row and metric
  report.py     Markdown, CSV and PNG with the paper's numbers beside ours
  cli.py        the command line
"""
