"""The parser equivalence properties of tests/unit/test_parser_equivalence.py, searched long."""

from __future__ import annotations

from hypothesis import given, settings

from tests.unit.test_parser_equivalence import (
    detail_bodies,
    job_detail_parses_as_before,
    list_page_parses_as_before,
    pages,
)

test_list_pages_parse_as_before_thoroughly = settings(max_examples=1000, deadline=None)(
    given(pages())(list_page_parses_as_before)
)


test_job_details_parse_as_before_thoroughly = settings(max_examples=600, deadline=None)(
    given(detail_bodies)(job_detail_parses_as_before)
)
