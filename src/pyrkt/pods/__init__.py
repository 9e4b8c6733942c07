"""Pod lifecycle on disk: directories and flock ARE the state, no daemon.

- ``state``: the ``State`` enum and how a (directory, lock) pair maps onto it
- ``pod``: ``Pod`` handles: create, look up by UUID prefix, and move between states by rename(2)
- ``gc``: rkt's two-phase garbage collection (mark, then sweep under the exclusive lock)

Never imports the image store; stage0 joins pods and images.
"""
