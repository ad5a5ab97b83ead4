"""The direct strategy: every request to one backend."""
