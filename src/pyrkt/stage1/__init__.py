"""stage1: how a prepared pod dir runs. Flavors live here behind one small interface.

A flavor is an object with ``run``, ``enter``, ``stop`` and ``gc`` (see ``flavor.Flavor``),
registered by name in ``flavor.FLAVORS``: ``default`` (pod init as PID 1 of new namespaces,
apps pivot_root'ed into overlays) and ``fly`` (one app, chroot, host pid and net).
This package imports only ``pyrkt.model``, ``pyrkt.kernel``, ``pyrkt.errors`` and the stdlib:
pod init lives once per pod and must stay small.
"""
