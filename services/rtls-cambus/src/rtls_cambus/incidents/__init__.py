"""Incidents: their status flow, assignees, support groups, messages, attachments, and the rules that open them
from the suite's events."""
