"""``crypto.cache.Cache``: bounded, least recently used first out, one build per key."""

import threading

import pytest

from fedcore.crypto.cache import Cache


def test_get_builds_once_and_returns_the_same_object():
    cache: Cache[int, object] = Cache("t", 2)
    builds: list[int] = []

    def build() -> object:
        builds.append(1)
        return object()

    first = cache.get(1, build)
    assert cache.get(1, build) is first and builds == [1]


def test_least_recently_used_goes_first():
    cache: Cache[str, str] = Cache("t", 2)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    cache.get("a", lambda: "A2")  # a is now the newest
    cache.get("c", lambda: "C")
    assert cache.keys() == ["a", "c"] and "b" not in cache and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("a", lambda: "A3") == "A3"


def test_concurrent_callers_of_one_key_share_one_build():
    cache: Cache[int, object] = Cache("t", 4)
    built: list[object] = []
    start = threading.Barrier(8)

    def build() -> object:
        value = object()
        built.append(value)
        return value

    results: list[object] = []

    def worker() -> None:
        start.wait()
        results.append(cache.get(7, build))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(r is built[0] for r in results)


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="size must be >= 1"):
        Cache("t", 0)
