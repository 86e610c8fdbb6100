"""Celery application, tasks (pseudonymised extracts, retention, log purge), beat schedule.

Tasks take ids only, never document bytes or personal data. ``api`` and ``workers`` never import
each other: the API enqueues a task by its name.
"""
