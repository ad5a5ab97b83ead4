"""Webhook notifications of decision events (rollback, promote, steps, switches...).

``payload`` renders and signs a delivery (pure); ``sender.Notifier`` queues events
from the event log and delivers them off the request path.
"""
