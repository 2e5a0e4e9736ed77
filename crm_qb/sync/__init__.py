"""Sync rules: pure functions (mapping, merge, status, money) and the services that apply them."""
