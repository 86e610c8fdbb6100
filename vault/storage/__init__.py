"""Object storage for encrypted blobs: the BlobStore protocol and its backends."""
