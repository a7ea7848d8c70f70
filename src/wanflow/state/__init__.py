"""Durable workspace state: the content-addressed store, the step cache, the journal, locks, the shared store, out/."""
