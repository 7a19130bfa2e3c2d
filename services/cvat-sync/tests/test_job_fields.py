"""The typed records of a job follow the field lists of `cvat_sync.jobs.fields`."""

from dataclasses import fields

from cvat_sync.jobs.fields import STORED_FIELDS, SUMMARY_FIELDS
from cvat_sync.jobs.models import Job
from cvat_sync.jobs.repository import StoredJob
from cvat_sync.jobs.schemas import CSV_COLUMNS, JobSummary


def test_the_stored_job_holds_the_stored_fields_in_order() -> None:
    assert tuple(field.name for field in fields(StoredJob)) == STORED_FIELDS


def test_the_list_row_and_the_export_line_show_the_summary_fields() -> None:
    assert tuple(JobSummary.model_fields) == (*SUMMARY_FIELDS[:-1], "deleted", "deleted_at", "cvat_link")
    assert (*(name for name in SUMMARY_FIELDS if name != "deleted_at"), "deleted", "cvat_link") == CSV_COLUMNS
    assert set(SUMMARY_FIELDS) <= set(Job.__table__.columns.keys())
