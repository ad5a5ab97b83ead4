"""Metrics, logs, events, live windows, dashboard numbers, model input/output inspection."""
