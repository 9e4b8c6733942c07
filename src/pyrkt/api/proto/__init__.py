"""Generated code only: ``v1alpha_pb2`` (and its ``.pyi``) made from ``v1alpha.proto`` by
`make proto`. Not linted; tests/unit/api/test_proto.py checks it matches the .proto."""
