"""The only place for ctypes and privileged calls: mounts, namespaces, capabilities, seccomp,
cgroups, flock and atomic files. Thin typed wrappers, one module per kernel concept; every
failure is raised as a ``KernelError`` naming the call and the path.

- ``fs``: atomic writes (temp + fsync + rename), safe joins under a root, making a path inside
  a root without following links out of it, mknod for the store
- ``trees``: walking and removing directory trees of any depth through fds (openat/unlinkat)
- ``lock``: flock(2) on files and directories, shared/exclusive, inheritable across exec
- ``libc``: the ctypes binding (loaded lazily; nothing else touches ctypes)
- ``api``: the ``Kernel`` interface stage1's executor calls through: ``LinuxKernel`` (these
  modules); ``recording``: ``RecordingKernel`` (records the calls, for tests without root)
- ``mount``, ``namespaces``, ``caps``, ``seccomp`` (and ``seccomp_compile``), ``cgroups``, ``process``
"""
