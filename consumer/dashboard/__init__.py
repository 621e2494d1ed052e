"""The built-in dashboard (`/dashboard`): its reads (queries.py), its charts (chart.py) and its page (static/)."""
