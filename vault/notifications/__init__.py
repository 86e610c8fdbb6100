"""Notifications to people (mail): what is sent, and the protocol that sends it."""
