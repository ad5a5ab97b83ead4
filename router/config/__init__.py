"""The config file: its pydantic model, the loader, and located error messages."""
