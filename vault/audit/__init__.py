"""The hash-chained audit log: append, verify, signed checkpoints, address anonymising."""
