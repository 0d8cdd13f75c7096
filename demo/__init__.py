"""The demo: a generated warehouse, OKRs on it, a local analytics API, one command."""
