"""Queries of the S3 backend's bookkeeping tables (`s3_models`)."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recording_storage.storage.s3_models import S3Object, S3Upload, S3UploadPart


async def get_object(session: AsyncSession, key: str) -> S3Object | None:
    return await session.get(S3Object, key, populate_existing=True)


async def get_upload(session: AsyncSession, key: str, *, lock: bool = False) -> S3Upload | None:
    statement = select(S3Upload).where(S3Upload.key == key).execution_options(populate_existing=True)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def parts_of(session: AsyncSession, key: str) -> list[S3UploadPart]:
    statement = select(S3UploadPart).where(S3UploadPart.key == key).order_by(S3UploadPart.number)
    return list((await session.execute(statement)).scalars())


async def add_upload(session: AsyncSession, key: str, object_key: str) -> None:
    await session.execute(insert(S3Upload).values(key=key, object_key=object_key).on_conflict_do_nothing())


async def set_upload_id(session: AsyncSession, key: str, upload_id: str) -> None:
    await session.execute(update(S3Upload).where(S3Upload.key == key).values(upload_id=upload_id))


async def set_tail(session: AsyncSession, key: str, tail_key: str | None, size: int, sha256: str | None) -> None:
    await session.execute(
        update(S3Upload).where(S3Upload.key == key).values(tail_key=tail_key, tail_size=size, tail_sha256=sha256)
    )


async def put_part(session: AsyncSession, key: str, number: int, size: int, etag: str, sha256: str) -> None:
    """Record a part; a part sent again under its number replaces the row, as it replaced the part in S3."""
    statement = insert(S3UploadPart).values(key=key, number=number, size=size, etag=etag, sha256=sha256)
    statement = statement.on_conflict_do_update(
        index_elements=[S3UploadPart.key, S3UploadPart.number],
        set_={"size": size, "etag": etag, "sha256": sha256},
    )
    await session.execute(statement)


async def drop_parts_after(session: AsyncSession, key: str, number: int) -> None:
    await session.execute(delete(S3UploadPart).where(S3UploadPart.key == key, S3UploadPart.number > number))


async def delete_upload(session: AsyncSession, key: str) -> None:
    await session.execute(delete(S3Upload).where(S3Upload.key == key))


async def add_object(session: AsyncSession, key: str, object_key: str, size: int) -> None:
    statement = insert(S3Object).values(key=key, object_key=object_key, size=size)
    statement = statement.on_conflict_do_update(
        index_elements=[S3Object.key], set_={"object_key": object_key, "size": size}
    )
    await session.execute(statement)


async def delete_object_key(session: AsyncSession, key: str) -> str | None:
    """Remove `key`; answers the S3 object to delete when no other key shares it, else None.

    The rows of the object are locked first, so two keys of one object deleted at once never both leave it.
    """
    row = await get_object(session, key)
    if row is None:
        return None
    await session.execute(select(S3Object.key).where(S3Object.object_key == row.object_key).with_for_update())
    await session.execute(delete(S3Object).where(S3Object.key == key))
    remaining = await session.scalar(
        select(func.count()).select_from(S3Object).where(S3Object.object_key == row.object_key)
    )
    return row.object_key if not remaining else None
