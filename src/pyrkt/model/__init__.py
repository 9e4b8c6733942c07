"""Vocabulary of pyrkt: pure values, parsed and validated once, no I/O.

- ``image``: the one internal image model (OCI, Docker and ACI all map onto it).
- ``pod``: the appc pod manifest written into every pod dir (``cat-manifest``).
- ``abi``: the versioned stage0 -> stage1 contract.
- ``names``: appc names, app names, UUIDs.
"""
