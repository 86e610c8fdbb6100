"""The only place in ``vault`` that does cryptography.

- ``envelope``: the streaming, envelope-encrypted object format documents are stored in.
- ``fields``: small values (names, contact details, free text) sealed under a patient or case key.
- ``primitives``: thin named wrappers over pyca/cryptography's hazmat layer, checked against
  Wycheproof vectors; the other modules build on these and nothing else.

Every authenticity or integrity failure raises the one opaque ``vault.errors.DecryptionFailed``.
"""
