"""Durable stores for caches and other state that must survive restarts."""
