"""A tour of acid on the embedded LMDB engine: records, an index, a
transaction that rolls back, and the data still there after reopening.

Run: python examples/demo.py [URL]   (default: an LMDB store in a temp dir)
"""

from __future__ import annotations

import sys
import tempfile

import acid


def open_people(store: acid.Store) -> acid.Collection:
    people = store.add_collection("people", key_func=lambda p: p["email"])
    people.add_index("age", lambda p: (p["age"], p["name"]))
    people.add_index("tag", lambda p: p["tags"])  # one entry per tag
    return people


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="acid-demo-")
    url = sys.argv[1] if len(sys.argv) > 1 else f"lmdb:{tmp}/people"
    with acid.open(url) as store:
        print(f"opened {store.engine.url}")  # engines leave passwords out
        people = open_people(store)
        with store.begin(write=True):
            people.put(
                {"email": "ada@x.org", "name": "Ada", "age": 36, "tags": ["math"]}
            )
            people.put(
                {
                    "email": "alan@x.org",
                    "name": "Alan",
                    "age": 41,
                    "tags": ["math", "crypto"],
                }
            )
            people.put(
                {
                    "email": "grace@x.org",
                    "name": "Grace",
                    "age": 85,
                    "tags": ["navy", "cobol"],
                }
            )
        print(
            "by age 30..50:",
            [p["name"] for p in people.indices["age"].values(lo=30, hi=50)],
        )
        print("tagged math:  ", [k[0] for k in people.indices["tag"].keys("math")])

        with store.begin(write=True):
            people.delete("ada@x.org")
            acid.abort()  # changed our mind: record and index entries roll back
        print("after abort:  ", people.get("ada@x.org")["name"])
        print("check:        ", "ok" if store.check().ok else store.check())

    if url.startswith("lmdb:"):
        with acid.open(url) as store:
            people = open_people(store)
            print("reopened:     ", [k[0] for k in people.keys()])
            print("oldest:       ", people.indices["age"].find(reverse=True)["name"])


if __name__ == "__main__":
    main()
