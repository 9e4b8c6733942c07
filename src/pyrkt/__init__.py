"""pyrkt: a daemonless, pod-native container engine modelled on CoreOS rkt.

Kept empty on purpose: `python -m pyrkt.stage1` and the CLI hot path must not pay for
imports they do not use.
"""

__version__ = "0.1.0"
