"""The bitmap set of row ids a run and a worker keep: the same answers as a set, a fraction of
its memory."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from sync_service.utils import idset
from sync_service.utils.idset import IdSet


def check_same(ids: IdSet, model: set[int]) -> None:
    assert len(ids) == len(model) and bool(ids) == bool(model)
    assert sorted(ids) == sorted(model)
    for n in list(model)[:200]:
        assert n in ids


@pytest.mark.parametrize("bitmap_bytes", [idset.MAX_BITMAP_BYTES, 4])
def test_it_answers_as_a_set_does_under_random_adds_and_discards(
        monkeypatch: pytest.MonkeyPatch, bitmap_bytes: int) -> None:
    # given a small bitmap limit too (4 bytes: most ids spill into the plain set beside it)
    monkeypatch.setattr(idset, "MAX_BITMAP_BYTES", bitmap_bytes)
    rng = random.Random(7)
    ids, model = IdSet(), set[int]()
    # when ids around a moving middle are added and discarded, some far below the first
    for step in range(20_000):
        n = max(0, 5000 + step // 4 + rng.randint(-300, 300) - (4000 if step % 97 == 0 else 0))
        if rng.random() < 0.7:
            ids.add(n)
            model.add(n)
        else:
            ids.discard(n)
            model.discard(n)
    # then it holds what the set holds, no more and no less
    check_same(ids, model)
    for n in range(0, 12_000):
        assert (n in ids) == (n in model), n
    assert "7" not in ids and None not in ids


def test_difference_copy_and_iteration_in_order() -> None:
    ids = IdSet([10, 3, 900, 3, 64])
    assert list(ids) == [3, 10, 64, 900] and len(ids) == 4
    rest = ids - {10, 11}
    assert list(rest) == [3, 64, 900] and list(ids) == [3, 10, 64, 900]  # the original untouched
    twin = ids.copy()
    twin.add(5)
    assert 5 in twin and 5 not in ids


def test_an_id_far_from_the_rest_is_kept_beside_the_bitmap_not_in_it() -> None:
    ids = IdSet([1, 2])
    ids.add(10**15)  # a bitmap reaching it would take petabytes
    ids.add(0)
    assert {0, 1, 2, 10**15} == set(ids) and 10**15 in ids and 10**15 - 1 not in ids
    ids.discard(10**15)
    assert list(ids) == [0, 1, 2]


def test_a_negative_id_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        IdSet([-1])


def test_dense_ids_take_a_fraction_of_a_sets_memory() -> None:
    # given the row ids a run of 200 000 operations applies, from an id well above zero
    first = 7_000_000
    tracemalloc.start()
    try:
        ids = IdSet(range(first, first + 200_000))
        bitmap, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        plain = set(range(first, first + 200_000))
        as_set, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then they take about an eighth of a byte each, where the set took tens of bytes
    assert len(ids) == len(plain) == 200_000 and first + 199_999 in ids and first - 1 not in ids
    assert bitmap < 40_000, bitmap
    assert as_set - bitmap > 6_000_000, (as_set, bitmap)
