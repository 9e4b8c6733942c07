"""Running CNI plugins: the CNI contract (CNI_* environment, config on stdin, result or error
JSON on stdout), plugin lookup, and reading the addresses out of results of any version."""

from __future__ import annotations

import os
import sys
import time

try:
    import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers (~1 ms)
except ImportError:
    import signal as _signal  # type: ignore[no-redef]

from pyrkt.errors import NetworkSetupError
from pyrkt.model import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIMINGS_ENV = "PYRKT_NET_TIMINGS"
RAW_CONF = "pyrktConfText"  # in a conflist made of a plain .conf: its text as written (network.config)
DEFAULT_PLUGIN_DIRS = ("/usr/lib/pyrkt/plugins/net", "/usr/lib/cni", "/opt/cni/bin")
PLUGIN_TIMEOUT = 60.0  # seconds


def report_time(what: str, started: float) -> None:
    """With ``PYRKT_NET_TIMINGS`` set (by ``make bench``), one stderr line per plugin call and
    per ``add``/``down``: ``pyrkt-net-timing: <what> <ms>``."""
    if os.environ.get(TIMINGS_ENV):
        sys.stderr.write(f"pyrkt-net-timing: {what} {(time.perf_counter() - started) * 1000:.2f}\n")


def find_plugin(kind: str, plugin_path: list[str]) -> str:
    for d in plugin_path:
        candidate = os.path.join(d, kind)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NetworkSetupError(f"CNI plugin {kind!r} not found in {':'.join(plugin_path)}")


def plugin_config(conflist: dict[str, Any], index: int, prev: dict[str, Any] | None,
                  runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """What plugin ``index`` of a chain gets on stdin (CNI spec: name, cniVersion, prevResult)."""
    conf = dict(conflist["plugins"][index])
    _put(conf, "name", conflist["name"])
    _put(conf, "cniVersion", conflist.get("cniVersion", "0.4.0"))
    if prev is not None:
        _put(conf, "prevResult", prev)
    wanted = wanted_runtime(conf, runtime)
    if wanted:
        _put(conf, "runtimeConfig", wanted)
    return conf


def _put(conf: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``, dropping its other spellings (``"Name"``), which a plugin would also read."""
    for k in [k for k in conf if k != key and jsonio.fold_key(k) == jsonio.fold_key(key)]:
        del conf[k]
    conf[key] = value


def wanted_runtime(plugin: dict[str, Any], runtime: dict[str, Any] | None) -> dict[str, Any]:
    """The runtime config (``portMappings``) ``plugin`` asks for in its ``capabilities``."""
    caps = jsonio.field(plugin, "capabilities") or {}
    if not isinstance(caps, dict):
        return {}
    return {k: v for k, v in (runtime or {}).items() if jsonio.field(caps, k)}


def plugin_input(conflist: dict[str, Any], index: int, prev: dict[str, Any] | None,
                 runtime: dict[str, Any] | None = None) -> str:
    """The bytes plugin ``index`` reads on stdin: a plain .conf as written, as rkt hands it on,
    unless the plugin must also be given a previous result or runtime config."""
    text = conflist.get(RAW_CONF)
    if isinstance(text, str) and prev is None and not wanted_runtime(conflist["plugins"][index], runtime):
        return text
    return jsonio.dumps(plugin_config(conflist, index, prev, runtime))


def call(command: str, plugin: str, stdin: str, *, kind: str, container_id: str, netns: str, ifname: str,
         args: str, plugin_path: list[str], network: str) -> dict[str, Any] | None:
    """Run ``plugin`` (of type ``kind``) for ``command`` with ``stdin``; its result on ADD."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": ":".join(plugin_path),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    started = time.perf_counter()
    try:
        returncode, stdout, stderr = run_program(plugin, stdin.encode(), env, PLUGIN_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise NetworkSetupError(f"network {network!r}: plugin {kind!r}: {e}") from None
    finally:
        report_time(f"plugin {command} {network} {kind}", started)
    out = stdout.decode(errors="replace").strip()
    if returncode != 0:
        msg = out or stderr.decode(errors="replace").strip()
        try:
            err = jsonio.loads(out)
            msg = err.get("msg", msg) + (f" ({err['details']})" if err.get("details") else "")
        except (ValueError, AttributeError):
            pass
        raise NetworkSetupError(f"network {network!r}: plugin {kind!r} failed on {command}: "
                                f"{msg.splitlines()[0] if msg else 'exit ' + str(returncode)}")
    if command != "ADD":
        return None
    try:
        result = jsonio.loads(out) if out else {}
    except ValueError:
        raise NetworkSetupError(f"network {network!r}: plugin {kind!r} printed no JSON result") from None
    if not isinstance(result, dict):
        raise NetworkSetupError(f"network {network!r}: plugin {kind!r} printed an invalid result")
    return result


def run_program(path: str, stdin: bytes, env: dict[str, str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run ``path`` with ``stdin`` on its standard input: (exit code, stdout, stderr), as
    ``subprocess.run(..., input=stdin, capture_output=True, timeout=timeout)`` (negative code:
    killed by that signal), without ``subprocess`` (~7 ms of imports: threading, selectors,
    signal's enums) on the run path and in the teardown interpreter. The program gets no fd but
    its three pipes, and the default action for the signals Python ignores. Past ``timeout``
    seconds it is killed and TimeoutError raised; so it is on any error here, never left running."""
    import select

    fds: list[int] = []
    try:
        in_r, in_w = os.pipe()
        fds += (in_r, in_w)
        out_r, out_w = os.pipe()
        fds += (out_r, out_w)
        err_r, err_w = os.pipe()
        fds += (err_r, err_w)
        actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                          (os.POSIX_SPAWN_DUP2, err_w, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
        pid = os.posix_spawn(path, [path], env, file_actions=actions, setsigdef=_DEFAULT_SIGNALS)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    open_fds = {in_w, out_r, err_r}
    try:
        os.set_blocking(in_w, False)
        poller = select.poll()
        poller.register(in_w, select.POLLOUT)
        poller.register(out_r, select.POLLIN)
        poller.register(err_r, select.POLLIN)
        pending = memoryview(stdin)
        if not pending:
            _close(in_w, poller, open_fds)
        deadline = time.monotonic() + timeout
        while out_r in open_fds or err_r in open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{path} timed out after {timeout:g} seconds")
            for fd, _ in poller.poll(left * 1000):
                if fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]  # it reads no more: as subprocess, not an error
                    if not pending:
                        _close(in_w, poller, open_fds)
                else:
                    data = os.read(fd, 65536)
                    if data:
                        chunks[fd].append(data)
                    else:
                        _close(fd, poller, open_fds)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        for fd in open_fds:
            os.close(fd)
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]), b"".join(chunks[err_r])


# reset in the program as subprocess resets them (Python ignores them)
_DEFAULT_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)


def _inherited_fds() -> list[int]:
    """This process's fds past stdio that a program it spawns would inherit (not close-on-exec):
    pod init's namespace fds in the teardown interpreter, say, which a plugin must not hold."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    out.append(fd)
            except OSError:
                pass  # the listing's own fd, closed since
    return out


def _close(fd: int, poller: Any, open_fds: set[int]) -> None:
    poller.unregister(fd)
    os.close(fd)
    open_fds.discard(fd)


def addresses(result: dict[str, Any]) -> list[str]:
    """IPv4/IPv6 addresses with prefix ("172.16.28.5/24") from a 0.1–1.0 result."""
    return _ip_fields(result, "address", "ip")


def gateways(result: dict[str, Any]) -> list[str]:
    """The gateways of a 0.1–1.0 result's addresses, in order."""
    return _ip_fields(result, "gateway", "gateway")


def _ip_fields(result: dict[str, Any], field: str, old_field: str) -> list[str]:
    """One field of each address: ``ips[].field`` (CNI 0.3+), then ``ip4``/``ip6`` ``old_field`` (0.1/0.2)."""
    out = []
    for ip in result.get("ips") or ():
        if isinstance(ip, dict) and ip.get(field):
            out.append(str(ip[field]))
    for key in ("ip4", "ip6"):
        block = result.get(key)
        if isinstance(block, dict) and block.get(old_field):
            out.append(str(block[old_field]))
    return out


def dns(result: dict[str, Any]) -> dict[str, Any]:
    d = result.get("dns")
    return d if isinstance(d, dict) else {}
