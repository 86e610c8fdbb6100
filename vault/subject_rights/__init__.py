"""Data-subject rights (GDPR Art. 15-21): the request register, exports, rectification, erasure,
restriction, objection and withdrawal of consent, each served by the product."""
