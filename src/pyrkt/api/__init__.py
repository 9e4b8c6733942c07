"""Services over pyrkt's state: rkt's read-only v1alpha gRPC API (`pyrkt api-service`) and its
metadata service (`pyrkt metadata-service`).

- ``pods``: pods as the API's ``Pod`` messages, and rkt's pod filters
- ``images``: stored images as ``Image`` messages, and rkt's image filters
- ``logs``: the lines GetLogs streams, from the apps' log files
- ``events``: what ListenEvents streams, from samples of the pods' and images' state
- ``service``: the gRPC server; errors become gRPC status codes there, in one place
- ``proto``: the message classes generated from ``proto/v1alpha.proto``
- ``metadata``: rkt's metadata service (`pyrkt metadata-service`), the appc metadata API over
  the stdlib's HTTP server; it imports no gRPC

The only package that imports ``grpc`` and ``google.protobuf`` (import-linter). It reads state
the way `list`, `status`, `image list` and `logs` do, and never forks: a gRPC server is
multi-threaded. Anything that would change state spawns `pyrkt` instead.
"""
