"""Every table of the schema, imported together so the Alembic environment sees them all."""

from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.sync.models import SyncRun
from cvat_sync.webhooks.models import WebhookLog

__all__ = ["Job", "JobChange", "SyncRun", "WebhookLog"]
