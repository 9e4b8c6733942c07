"""`pyrkt cri`: the Kubernetes Container Runtime Interface (runtime.v1) over a unix socket.

    server.py    the gRPC server, its method tables and the socket
    images.py    ImageService: image references, Image messages, pulls with the request's auth
    runtime.py   RuntimeService calls that need no sandbox: Version, Status, UpdateRuntimeConfig
    mapping.py   PodSandboxConfig and ContainerConfig onto pyrkt's pod and app requests (pure)
"""
