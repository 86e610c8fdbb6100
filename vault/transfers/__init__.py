"""Transfers: documents of a case forwarded to a partner, for a purpose, under a legal basis."""
