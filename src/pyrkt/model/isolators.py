"""appc's resource isolators (``resource/memory``, ``resource/cpu``, ``os/linux/cpu-shares``,
``os/linux/oom-score-adj``) and pyrkt's ``pyrkt/pids-limit``: their values, the quantities
they are written in (Kubernetes' ``64M``, ``128Mi``, ``500m``), rkt's per-app flags that set
them, and the ``Limits`` an app's cgroup gets from them. Pure: no I/O.

Precedence is rkt's: an app's isolators are read in order and the last of a name wins; the
flags replace the image's isolator of the same name (``with_overrides``), and the pod
manifest's app section, which holds the result, is what stage1 reads.
"""

from __future__ import annotations

from pyrkt.errors import UsageError
from pyrkt.model.plan import Limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MEMORY = "resource/memory"
CPU = "resource/cpu"
CPU_SHARES = "os/linux/cpu-shares"
OOM_SCORE_ADJ = "os/linux/oom-score-adj"
PIDS_LIMIT = "pyrkt/pids-limit"  # pyrkt's own: appc has no isolator for pids.max
RESOURCE_ISOLATORS = frozenset({MEMORY, CPU, CPU_SHARES, OOM_SCORE_ADJ, PIDS_LIMIT})

DEFAULT_PIDS_LIMIT = 4096  # per app, so that a fork bomb in a pod cannot take the host
MIN_MEMORY = 4096  # rkt's floor for --memory: below it, 16m (milli-bytes) was meant as 16M
MAX_MEMORY = 2 ** 63 - 1  # a Quantity's int64; the kernel's parser wraps what is above its u64 silently
MIN_CPU_MILLIS = 10  # CFS takes no quota under 1 ms per 100 ms period
MAX_CPU_MILLIS = 1_000_000_000  # rkt's MaxMilliValue
PIDS_MAX = 4194304  # the kernel's PID_MAX_LIMIT

# Kubernetes' quantity suffixes: binary, then decimal (resource.Quantity).
BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(text: str, scale: int = 0) -> int:
    """A Kubernetes quantity times ``10**scale``, rounded up to an integer (``scale=3`` gives
    milli-units: ``0.5`` and ``500m`` are 500). Raises ValueError for anything else."""
    s = text.strip()
    number = s.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    suffix = s[len(number):]
    exp = 0
    mult = 1
    if not suffix and ("e" in number or "E" in number):  # 1e3, 1.5E-3
        head, _, tail = number.replace("E", "e").partition("e")
        if not tail.lstrip("+-").isdigit():
            raise ValueError(f"invalid quantity {text!r}")
        number, exp = head, int(tail)
    elif suffix in BINARY:
        mult = BINARY[suffix]
    elif suffix in DECIMAL:
        exp = DECIMAL[suffix]
    else:
        raise ValueError(f"invalid quantity {text!r}")
    sign = -1 if number.startswith("-") else 1
    number = number.lstrip("+-")
    whole, dot, frac = number.partition(".")
    if not (whole + frac).isdigit() or (dot and not frac and not whole):
        raise ValueError(f"invalid quantity {text!r}")
    digits = int(whole + frac) * mult * sign
    exp += scale - len(frac)
    factor: int = 10 ** abs(exp)
    if exp >= 0:
        return digits * factor
    return -((-digits) // factor)  # rounded up, as Quantity.Value and MilliValue


def memory_flag(text: str) -> str:
    """rkt's ``--memory``: a quantity of at least 4096 bytes, kept as given."""
    try:
        value = parse_quantity(text)
    except ValueError:
        raise UsageError(f"invalid --memory={text}: want a quantity such as 64M or 1Gi") from None
    if value < MIN_MEMORY:
        raise UsageError(f"--memory={text}: memory limit of {value} bytes too low. "
                         "Try a reasonable value, such as --memory=16M")
    if value > MAX_MEMORY:
        raise UsageError(f"--memory={text}: memory limit too high (at most {MAX_MEMORY} bytes)")
    return text


def cpu_flag(text: str) -> str:
    """rkt's ``--cpu``: millicores (``500m``) or cores (``0.5``, ``2``)."""
    try:
        millis = parse_quantity(text, 3)
    except ValueError:
        raise UsageError(f"invalid --cpu={text}: want millicores such as 500m, or cores such as 2") from None
    try:
        check_cpu(millis)
    except ValueError as e:
        raise UsageError(f"--cpu={text}: {e}") from None
    return text


def check_cpu(millis: int) -> None:
    if not MIN_CPU_MILLIS <= millis <= MAX_CPU_MILLIS:
        raise ValueError(f"a CPU limit must be between {MIN_CPU_MILLIS}m and {MAX_CPU_MILLIS // 1000} cores")


def int_flag(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"invalid --{name}={text}: want an integer") from None
    if not low <= value <= high:
        raise UsageError(f"--{name}={text}: must be between {low} and {high}")
    return value


def flag_isolators(*, memory: str = "", cpu: str = "", cpu_shares: str = "", oom_score_adj: str = "",
                   pids_limit: str = "") -> list[tuple[str, Any]]:
    """The isolators rkt's per-app flags stand for (``--memory`` and ``--cpu`` set request and
    limit, as rkt), checked; flags not given are left out."""
    out: list[tuple[str, Any]] = []
    if memory:
        out.append((MEMORY, {"request": memory_flag(memory), "limit": memory}))
    if cpu:
        out.append((CPU, {"request": cpu_flag(cpu), "limit": cpu}))
    if cpu_shares:
        out.append((CPU_SHARES, int_flag("cpu-shares", cpu_shares, 2, 262144)))
    if oom_score_adj:
        out.append((OOM_SCORE_ADJ, int_flag("oom-score-adj", oom_score_adj, -1000, 1000)))
    if pids_limit:
        out.append((PIDS_LIMIT, int_flag("pids-limit", pids_limit, 0, PIDS_MAX)))
    return out


def with_overrides(isolators: tuple[tuple[str, Any], ...],
                   overrides: list[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """``isolators`` with every one of an overridden name replaced by the override (rkt's
    ReplaceIsolatorsByName), the overrides last."""
    names = {n for n, _ in overrides}
    return (*((n, v) for n, v in isolators if n not in names), *overrides)


def limits(isolators: tuple[tuple[str, Any], ...], where: str = "") -> tuple[Limits, int | None]:
    """The cgroup limits and OOM score adjustment ``isolators`` ask for (the last of a name
    wins; others are not looked at). A bad value is a UsageError naming ``where``."""
    lim = Limits(pids=DEFAULT_PIDS_LIMIT)
    given: list[str] = []
    oom: int | None = None
    for name, value in isolators:
        if name not in RESOURCE_ISOLATORS:
            continue
        try:
            if name == OOM_SCORE_ADJ:
                oom = bounded(value, -1000, 1000)
                continue
            lim = apply(lim, name, value)
        except (ValueError, TypeError, AttributeError) as e:
            raise UsageError(f"{where}isolator {name}: {e}") from None
        given = [g for g in given if g != name] + [name]
    return lim.replace(given=tuple(given)), oom


def apply(lim: Limits, name: str, value: Any) -> Limits:
    if name == CPU_SHARES:
        return lim.replace(cpu_shares=bounded(value, 2, 262144))
    if name == PIDS_LIMIT:
        return lim.replace(pids=bounded(value, 0, PIDS_MAX))
    request, limit = resource_value(value)
    if name == MEMORY:
        memory, memory_request = (parse_quantity(q) if q else 0 for q in (limit, request))
        if memory < 0 or memory_request < 0:
            raise ValueError("a memory quantity cannot be negative")
        if max(memory, memory_request) > MAX_MEMORY:
            raise ValueError(f"a memory quantity cannot be above {MAX_MEMORY} bytes")
        return lim.replace(memory=memory, memory_request=memory_request)
    millis = parse_quantity(limit, 3) if limit else 0
    if limit:
        check_cpu(millis)
    cpu_request = parse_quantity(request, 3) if request else 0
    if not 0 <= cpu_request <= MAX_CPU_MILLIS:
        raise ValueError(f"a CPU request must be between 0 and {MAX_CPU_MILLIS // 1000} cores")
    return lim.replace(cpu=millis, cpu_request=cpu_request)


def resource_value(value: Any) -> tuple[str, str]:
    """appc's resource value ``{"request": Q, "limit": Q, "default": false}``: (request, limit)."""
    if not isinstance(value, dict):
        raise ValueError(f"want an object with request and limit, got {value!r}")
    if value.get("default"):
        raise ValueError("default must be false")
    request, limit = value.get("request"), value.get("limit")
    for q in (request, limit):
        if q is not None and not isinstance(q, (str, int, float)):
            raise ValueError(f"invalid quantity {q!r}")
    return str(request or ""), str(limit or "")


def bounded(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"want an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}, got {value}")
    return int(value)


def describe(lim: Limits, oom: int | None) -> dict[str, Any]:
    """The limits as ``status --format=json`` shows them (values in bytes, millicores, pids;
    absent: none)."""
    out: dict[str, Any] = {}
    for key, value in (("memory", lim.memory), ("memory_request", lim.memory_request), ("cpu_millis", lim.cpu),
                       ("cpu_request_millis", lim.cpu_request), ("cpu_shares", lim.cpu_shares),
                       ("pids", lim.pids)):
        if value:
            out[key] = value
    if oom is not None:
        out["oom_score_adj"] = oom
    return out


POD_LIMITS = frozenset({MEMORY, CPU, CPU_SHARES, PIDS_LIMIT})
"""The pod-level isolators of a pod manifest pyrkt applies, to the pod's cgroup (an OOM score is
a process's: os/linux/oom-score-adj stays an app's)."""


def pod_limits(pod_isolators: tuple[tuple[str, Any], ...]) -> Limits:
    """The limits of the pod's own cgroup: its pod-level resource isolators (no default pids
    limit: each app has its own). A bad value is a UsageError naming the pod."""
    own = tuple((name, value) for name, value in pod_isolators if name in POD_LIMITS)
    if not own:
        return Limits()
    lim, _ = limits(own, "pod: ")
    return lim if PIDS_LIMIT in lim.given else lim.replace(pids=0)
