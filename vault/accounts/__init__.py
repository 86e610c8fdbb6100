"""Accounts: users and their roles, passwords, bearer tokens, login throttling, registration."""
