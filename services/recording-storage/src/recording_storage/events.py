"""Events recording-storage publishes, built in one place so their shape stays the same everywhere."""

from __future__ import annotations

from typing import Final

from mirante.bus.envelope import Event
from recording_storage.models import Recording, UploadSession

SOURCE: Final = "mirante/recording-storage"
SCHEMA: Final = "recording_storage"
UPLOAD_COMPLETED: Final = "recording.upload.completed"
UPLOAD_EXPIRED: Final = "recording.upload.expired"
RECORDING_DELETED: Final = "recording.deleted"


def upload_completed(recording: Recording) -> Event:
    return Event(
        source=SOURCE,
        type=UPLOAD_COMPLETED,
        subject=f"recording/{recording.id}",
        tenant=recording.tenant,
        data={
            "recording_id": str(recording.id),
            "session_id": recording.session_id,
            "client_session_id": recording.client_session_id,
            "video_size": recording.video_size,
            "video_sha256": recording.video_sha256,
            "wats_user": recording.wats_user,
            "server_name": recording.server_name,
        },
    )


def upload_expired(session: UploadSession, received: dict[str, int]) -> Event:
    return Event(
        source=SOURCE,
        type=UPLOAD_EXPIRED,
        subject=f"upload-session/{session.id}",
        tenant=session.tenant,
        data={
            "session_id": session.id,
            "client_session_id": session.client_session_id,
            "video_size": session.video_size,
            "received": dict(received),
        },
    )


def recording_deleted(recording: Recording, reason: str) -> Event:
    return Event(
        source=SOURCE,
        type=RECORDING_DELETED,
        subject=f"recording/{recording.id}",
        tenant=recording.tenant,
        data={"recording_id": str(recording.id), "session_id": recording.session_id, "reason": reason},
    )
