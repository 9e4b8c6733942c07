"""The only place for ctypes and privileged calls: mounts, namespaces, capabilities, seccomp,
cgroups, flock and atomic files. Thin typed wrappers, one module per kernel concept; every
failure is raised as a ``KernelError`` naming the call and the path.

- ``fs``: atomic writes (temp + fsync + rename), safe joins under a root
- ``trees``: walking and removing directory trees of any depth through fds (openat/unlinkat)
- ``lock``: flock(2) on files and directories, shared/exclusive, inheritable across exec
- ``libc``: the ctypes binding (loaded lazily; nothing else touches ctypes)
- ``mount``, ``namespaces``, ``caps``, ``seccomp`` (and ``seccomp_compile``), ``cgroups``, ``process``
"""
