"""The proxy listener: uvicorn's httptools protocol hardened (head limits, refusals, sweeper)."""
