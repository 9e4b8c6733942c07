"""Pod networking as a CNI runtime (configs, netns, plugins, results, DNS and hosts files).

Today stage1 handles ``--net=host`` and ``--net=none`` itself; the CNI networks (default,
default-restricted, net.d) come here, plugged into the same place in stage1.
"""
