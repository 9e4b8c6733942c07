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
launcher = f"""#!{python} -IS
# pyrkt's launcher, written by scripts/write-launcher.py (see there for why)
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
