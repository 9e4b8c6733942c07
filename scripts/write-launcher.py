"""Write the `pyrkt` command into a venv: a launcher that starts in ~8 ms instead of ~11.

pip's console script starts the interpreter with site processing (the venv's .pth files,
setuptools' hooks) and imports `re` before pyrkt runs. This launcher starts Python isolated
(-I: no PYTHON* variables, no user site) and without `site` (-S), and puts exactly pyrkt's
source and the venv's site-packages on sys.path itself.

    python scripts/write-launcher.py VENV SRC
"""

import os
import sys
import sysconfig

venv, src = (os.path.abspath(p) for p in sys.argv[1:3])
python = os.path.join(venv, "bin", "python3")
purelib = sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv})
# A ^C while pyrkt loads ends it at once, as it would any program, with no traceback: SIGINT
# keeps the kernel's default until run_and_exit installs Python's handler (unless the caller
# ignored it, which stays so). One that comes before that reset, while Python's handler is still
# there, ends it with 130 as a ^C after it does (run_and_exit), also without a traceback.
launcher = f"""#!{python} -IS
# pyrkt's launcher, written by scripts/write-launcher.py (see there for why)
try:
    import _signal
    if _signal.getsignal(2) is _signal.default_int_handler:
        _signal.signal(2, _signal.SIG_DFL)
except KeyboardInterrupt:
    import os
    os._exit(130)
import sys
sys.path[0:0] = [{src!r}, {purelib!r}]
from pyrkt.cli.main import run_and_exit
run_and_exit()
"""
target = os.path.join(venv, "bin", "pyrkt")
tmp = target + ".tmp"
with open(tmp, "w") as f:
    f.write(launcher)
os.chmod(tmp, 0o755)
os.replace(tmp, target)
