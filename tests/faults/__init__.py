"""The fault-injection suite: `medvault serve` and `medvault worker` whose PostgreSQL, Redis,
S3 and KMS connections each run through a FaultProxy that a seeded chaos thread drops, delays
and cuts while clients run mixed operations through the API (see test_faults.py)."""
