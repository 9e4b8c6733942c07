"""CPython's private C modules that pyrkt uses for start-up speed (``_json``, ``_sqlite3``,
``_signal``), checked for what pyrkt calls, and the public fallback each module has for an
interpreter without them. A failure here names the module: on a new interpreter, look there
first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrkt.model import jsonio

USED = {
    "_json": ("make_scanner", "make_encoder", "encode_basestring_ascii"),
    "_sqlite3": ("connect", "Error", "sqlite_version"),
    "_signal": ("signal", "set_wakeup_fd", "pthread_sigmask", "SIG_BLOCK", "SIG_UNBLOCK", "SIG_DFL",
                "SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGWINCH", "SIGPIPE", "SIGXFSZ",
                "getsignal", "setitimer", "ITIMER_REAL", "SIGALRM", "raise_signal"),
}


@pytest.mark.parametrize("module", sorted(USED))
def test_private_module_has_what_pyrkt_calls(module: str) -> None:
    try:
        mod = __import__(module)
    except ImportError:
        pytest.fail(f"{sys.implementation.name} {sys.version.split()[0]} has no {module}: pyrkt falls back to the "
                    f"public module, which works but costs start-up time (see the module using it)")
    missing = [name for name in USED[module] if not hasattr(mod, name)]
    assert not missing, f"{module} of this interpreter lacks {missing}: the code using it needs a change"


DOCS = ['{"a": [1, 2.5, "x\\u00e9", null, true], "b": {"c": -0.0}}', "[]", '"\\ud83d\\ude00"', "  7 "]


@pytest.mark.parametrize("doc", DOCS)
def test_jsonio_reads_and_writes_as_the_json_module(doc: str) -> None:
    value = jsonio.loads(doc)
    assert value == json.loads(doc)
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.dumps(value, sort_keys=True, separators=(",", ":")) == json.dumps(value, sort_keys=True,
                                                                                 separators=(",", ":"))


FALLBACK = """
import sys
import signal, sqlite3  # on CPython the public modules are built on the private ones: load them
sys.modules["_json"] = sys.modules["_sqlite3"] = sys.modules["_signal"] = None  # first, then hide those
from pyrkt.model import jsonio
from pyrkt.store.index import _sqlite3
assert jsonio._json is None
assert jsonio.loads('{"a": [1, "x"]}') == {"a": [1, "x"]}
assert jsonio.dumps({"a": [1, "x"]}) == '{"a": [1, "x"]}'
try:
    jsonio.loads("[" * 300 + "]" * 300)
except jsonio.TooDeep:
    pass
else:
    raise AssertionError("nesting not bounded")
try:
    jsonio.loads("{not json")
except ValueError:
    pass
assert _sqlite3().__name__ == "sqlite3"
from pyrkt.stage1 import app, default, foreground, podinit
from pyrkt.network import cni
assert all(m._signal is signal for m in (app, default, foreground, podinit, cni))
print("fallback ok")
"""


def test_without_the_private_modules_the_public_ones_serve() -> None:
    r = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "fallback ok\n", r.stderr


SQLITE_WITHOUT_FUNCTOOLS = """
import sys
from pyrkt.store.index import Index, _sqlite3
sqlite3 = _sqlite3()
assert sqlite3.__name__ in ("_sqlite3", "sqlite3")
loaded = sorted(m for m in ("functools", "collections") if m in sys.modules)
conn = sqlite3.connect(":memory:", isolation_level=None)
conn.execute("CREATE TABLE t (a INTEGER)")
for i in range(300):  # more distinct and repeated statements than the statement cache holds
    conn.execute(f"INSERT INTO t VALUES ({i % 150})")
    conn.execute("INSERT INTO t VALUES (?)", (i,))
assert conn.execute("SELECT count(*), sum(a) FROM t").fetchone() == (600, 2 * sum(range(150)) + sum(range(300)))
import functools  # the real module, whole, for whoever imports it later
assert functools.reduce(lambda a, b: a + b, [1, 2, 3]) == 6 and callable(functools.partial)
print("loaded:", loaded)
"""


def test_sqlite_loads_without_functools_and_its_statement_cache_works() -> None:
    # _sqlite3 takes functools.lru_cache as it loads; the store index gives it that alone
    # (store.index._LruCacheOnly): the run path does not pay for functools and collections
    code = f"import sys\nsys.path[:0] = {sys.path!r}\n{SQLITE_WITHOUT_FUNCTOOLS}"  # -S: no site, as the launcher
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "loaded: []\n"
