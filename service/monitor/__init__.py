"""Feed monitoring: subscribed feeds polled, articles scored and stored, trends per outlet,
and an active-learning review queue (issue 11; docs/MONITORING.md)."""
