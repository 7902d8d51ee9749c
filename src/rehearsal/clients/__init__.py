"""Thin, typed clients for the target's interfaces; every call has a timeout from the plan."""
