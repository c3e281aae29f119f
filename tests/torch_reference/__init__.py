"""The project's own PyTorch re-statements of the reference models (for parity tests only).

Written from shared/specs/{pspnet,cascadepsp}.md: module and state_dict key names follow the
published checkpoints so that converted weights can be compared output for output.
"""
