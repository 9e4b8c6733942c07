"""Services over pyrkt's state (rkt's read-only api-service; later the Kubernetes CRI).

Not built yet. When it comes: gRPC lives only here, the server never forks (it spawns `pyrkt`
for anything that changes state) and errors map to gRPC codes in one place.
"""
