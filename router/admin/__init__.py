"""The admin listener: API, status, actions and the dashboard."""
