"""The obstore side of the storage interface (GCS, Azure), on obstore's in-memory store:
listing pages with and without delimiter after a key, HEAD with user metadata, streamed GET,
a changed or missing object, the check. The same class reads the emulators in
``test_storage_contract.py``."""

from __future__ import annotations

import asyncio

import obstore
import pytest
from obstore.store import MemoryStore

from sync_service.clients.storage.obstore_store import ObstoreStore
from sync_service.errors import ObjectError, ObjectGone

KEYS = ["p/a.txt", "p/b/1.txt", "p/b/2.txt", "p/c.txt", "p/d/e/f.txt", "p/z.txt", "q/outside.txt"]


@pytest.fixture
def store() -> ObstoreStore:
    memory = MemoryStore()
    for key in KEYS:
        obstore.put(memory, key, key.encode(), attributes={"Permissions": '{"read":["ann"]}'})
    return ObstoreStore(memory, "bucket", "p/", scheme="gs", page_size=2)


def test_prefix_listing_pages_after_a_key_with_paths_relative_to_the_prefix(store: ObstoreStore) -> None:
    pages = list(store.iter_scope("p/", start_after="p/b/1.txt"))
    assert [[s.key for s in page] for page, _, _ in pages] == [["p/b/2.txt", "p/c.txt"], ["p/d/e/f.txt", "p/z.txt"]]
    assert [more for _, _, more in pages] == [True, False]
    assert [s.path for page in store.iter_pages() for s in page] == ["a.txt", "b/1.txt", "b/2.txt", "c.txt",
                                                                     "d/e/f.txt", "z.txt"]


def test_delimited_listing_names_folders_with_their_slash_after_a_key(store: ObstoreStore) -> None:
    pages = list(store.iter_scope("p/", delimited=True))
    assert [([s.key for s in page], folders, more) for page, folders, more in pages] == [
        (["p/a.txt"], ["p/b/"], True), (["p/c.txt"], ["p/d/"], True), (["p/z.txt"], [], False)]
    after = list(store.iter_scope("p/", start_after="p/b/", delimited=True))
    assert [([s.key for s in page], folders) for page, folders, _ in after] == [
        (["p/c.txt"], ["p/d/"]), (["p/z.txt"], [])]
    assert list(store.iter_scope("p/", start_after="p/z.txt", delimited=True)) == [([], [], False)]


def test_first_entries_and_listed(store: ObstoreStore) -> None:
    assert store.first_entries("p/", ["p/a.txt", "p/c.txt", "p/z.txt"]) == ["p/b/", "p/d/"]
    assert store.first_entries("p/", ["p/c.txt"], delimited=False) == ["p/d/e/f.txt"]
    assert store.listed(["a.txt"]) == ({}, set())  # every event's path gets a HEAD


def test_head_and_streamed_get_carry_user_metadata(store: ObstoreStore) -> None:
    meta = store.head("p/b/2.txt")
    assert (meta.size, meta.metadata) == (9, {"Permissions": '{"read":["ann"]}'})
    assert store.check() >= 0

    async def read() -> bytes:
        async with store.connect() as session:
            opened = await session.open("p/c.txt", if_match=(await session.head("p/c.txt")).etag)
            try:
                return b"".join([chunk async for chunk in opened.chunks(4)])
            finally:
                opened.close()

    assert asyncio.run(read()) == b"p/c.txt"


def test_missing_and_changed_objects_are_the_services_errors(store: ObstoreStore) -> None:
    with pytest.raises(ObjectGone):
        store.head("p/nothing.txt")

    async def changed() -> None:
        async with store.connect() as session:
            await session.open("p/a.txt", if_match="not-its-etag")

    with pytest.raises(ObjectError, match="changed since it was listed"):
        asyncio.run(changed())
