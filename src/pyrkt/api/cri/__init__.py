"""`pyrkt cri`: the Kubernetes Container Runtime Interface (runtime.v1) over a unix socket.

    server.py    the gRPC server, its method tables and the socket
    images.py    ImageService: image references, Image messages, pulls with the request's auth
    runtime.py   RuntimeService calls that need no sandbox: Version, Status, UpdateRuntimeConfig,
                 RuntimeConfig
    mapping.py   PodSandboxConfig and ContainerConfig onto pyrkt's pod and app requests (pure)
    pods.py      sandboxes and containers: app sandboxes and their apps, found again from the pod dirs
    launch.py    starts a sandbox's pod in a process of its own (pod init must not hold the server's sockets)
    stats.py     container and sandbox stats from the cgroup accounting files
"""
