"""The explain() output printed in docs/guide.md is what acid prints."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import acid

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


def test_guide_explain_examples_run() -> None:
    text = GUIDE.read_text()
    section = text[text.index("## Queries") :]
    block = re.search(r"```text\n(.+?)```", section, re.S)
    assert block is not None
    store = acid.open("skiplist:/")
    people = store.add_collection("people", encoder="msgpack")
    people.add_index("city_age", acid.fields("address.city", "age"))
    people.add_index("name", acid.field("name"))
    people.update(
        [
            {"name": "Ada", "age": 36, "address": {"city": "London"}, "tags": ["m"]},
            {"name": "Grace", "age": 85, "address": {"city": "Arlington"}},
        ]
    )
    test = doctest.DocTestParser().get_doctest(
        block.group(1), {"people": people}, "guide", str(GUIDE), 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 6
