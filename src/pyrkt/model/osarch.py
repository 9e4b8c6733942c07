"""The ``os`` and ``arch`` labels of an appc image: which a manifest may carry (appc, checked
on fetch) and which a pod can run (rkt's stage0, checked on prepare for each app's image).

appc (spec/aci.md, schema/types/labels.go): both labels are optional, an image without them is
OS- and architecture-independent, and ``arch`` is checked only beside a known ``os``. rkt's
stage0 (``prepareAppImage``) is stricter for the image an app runs, and only for it: both
labels present, the os ``linux``. Dependencies (the bash-scripts image appc describes) may
omit them.
"""

from __future__ import annotations

# appc's types.ValidOSArch: the os/arch pairs a manifest may name.
APPC_OS_ARCH: dict[str, tuple[str, ...]] = {
    "linux": ("amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64", "ppc64le", "s390x"),
    "freebsd": ("amd64", "i386", "arm"),
    "darwin": ("x86_64", "i386"),
}
LINUX_ARCHES = APPC_OS_ARCH["linux"]


def manifest_os_arch_problem(labels: dict[str, str]) -> str | None:
    """Why appc refuses these labels (an os it does not know, an arch not of that os), or None."""
    os_name = labels.get("os")
    if os_name is None:
        return None
    if os_name not in APPC_OS_ARCH:
        return f"bad os {os_name!r} (must be one of: {', '.join(sorted(APPC_OS_ARCH))})"
    arch = labels.get("arch")
    if arch is not None and arch not in APPC_OS_ARCH[os_name]:
        return f"bad arch {arch!r} for {os_name}"
    return None


def runnable_os_arch_problem(labels: dict[str, str]) -> str | None:
    """Why rkt's stage0 would not run an app of an image with these labels, or None."""
    if "os" not in labels:
        return "missing os label in the image manifest"
    if "arch" not in labels:
        return "missing arch label in the image manifest"
    if labels["os"] != "linux":
        return f"bad os {labels['os']!r}"
    if labels["arch"] not in LINUX_ARCHES:
        return f"bad arch {labels['arch']!r} for linux"
    return None
