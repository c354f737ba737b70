"""Naming clusters with a vision LLM: choose each cluster's images, ask the
model concurrently and reliably, record the names in the run and a field."""
