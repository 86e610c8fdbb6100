"""Pseudonymised, k-anonymous quality-assurance extracts for analysts."""
