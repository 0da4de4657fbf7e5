"""The state CSV: exact round trip of every value, header, order and quoting."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sync_service.models.data_models import FileRecord
from sync_service.store.csv_processor import COLUMNS, CSVProcessor

AWKWARD = ["NA", "null", "0012", "a,b.txt", '"quoted".txt', "line\nbreak.txt", "", "None",
           "NaN", " padded ", "ünï/日本.txt", "1e5", "TRUE"]


def records(paths: list[str]) -> list[FileRecord]:
    return [FileRecord(i, p, i * 10, f"etag{i}", "2026-11-24T00:00:00Z",
                       '{"read":["a,b"],"note":"x \\"y\\""}', i) for i, p in enumerate(paths, 1)]


def test_awkward_paths_round_trip(tmp_path: Path) -> None:
    processor = CSVProcessor(tmp_path)
    written = records(AWKWARD)
    out = processor.export(written, name="state")
    assert out == tmp_path / "state.csv"
    assert processor.read_records(out) == written
    raw = out.read_bytes()
    assert raw.startswith(",".join(COLUMNS).encode() + b"\r\n")
    assert b'"a,b.txt"' in raw and b'"""quoted"".txt"' in raw


def test_empty_state_has_just_the_header(tmp_path: Path) -> None:
    out = CSVProcessor(tmp_path).export([], out=tmp_path / "empty.csv")
    assert out.read_bytes() == (",".join(COLUMNS) + "\r\n").encode()
    assert CSVProcessor.read_records(out) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=15))
def test_any_text_round_trips(paths: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        processor = CSVProcessor(folder)
        written = records(paths)
        assert processor.read_records(processor.export(written)) == written
