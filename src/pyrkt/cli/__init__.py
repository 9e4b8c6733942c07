"""Entry points of the `pyrkt` command: parse flags, call stage0, render output.

No domain logic lives here. ``main.py`` maps errors to exit codes in one place; ``flags.py`` is
a small parser for rkt's flag syntax (argparse costs ~9 ms of import on the run hot path and
cannot express rkt's per-app flags); ``output.py`` renders tables, times and JSON; one module
per verb lives in ``commands/``.
"""
