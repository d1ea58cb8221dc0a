"""URL parsing, parameters and the scheme registry."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest

from acid.engines import (
    Engine,
    EngineURL,
    Param,
    check_params,
    from_url,
    known_schemes,
    parse_bool,
    parse_seconds,
    parse_size,
    parse_url,
    register,
    resolve_params,
)
from acid.engines.skiplist import SkipListEngine
from acid.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "scheme", "path", "params"),
    [
        ("skiplist:/", "skiplist", "/", {}),
        ("lmdb:/var/data/app", "lmdb", "/var/data/app", {}),
        (
            "lmdb:relative/dir?map_size=1GiB",
            "lmdb",
            "relative/dir",
            {"map_size": "1GiB"},
        ),
        ("leveldb:///abs/path?a=1&b=", "leveldb", "/abs/path", {"a": "1", "b": ""}),
        ("LMDB:x", "lmdb", "x", {}),
    ],
)
def test_parse_url(url: str, scheme: str, path: str, params: dict[str, str]) -> None:
    parsed = parse_url(url)
    assert (parsed.scheme, parsed.path, parsed.params) == (scheme, path, params)
    assert parsed.module is None


@pytest.mark.parametrize("url", ["", "/just/a/path", "1abc:/", "?x=1"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="expected scheme:path"):
        parse_url(url)


def test_repeated_parameter() -> None:
    with pytest.raises(ConfigError, match="repeats parameter 'a'"):
        parse_url("lmdb:x?a=1&a=2")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("1GiB", 2**30),
        ("512MiB", 512 * 2**20),
        ("64MB", 64 * 10**6),
        ("1tib", 2**40),
        ("2k", 2048),
        ("1.5GiB", 3 * 2**29),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "1 parsec", "-1", "1e9"])
def test_bad_size(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_parse_bool() -> None:
    assert [parse_bool(t) for t in ("true", "1", "YES", "on")] == [True] * 4
    assert [parse_bool(t) for t in ("false", "0", "no", "Off")] == [False] * 4
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        from_url("nosuch:/x")
    message = str(info.value)
    assert "'nosuch'" in message
    for scheme in ("leveldb", "lmdb", "skiplist"):
        assert scheme in message


def test_unknown_parameter_names_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        from_url(f"lmdb:{tmp_path}?mapsize=1GiB")
    assert "'mapsize'" in str(info.value) and "map_size" in str(info.value)
    with pytest.raises(ConfigError, match="lock_timeout"):
        from_url("skiplist:/?cache=1")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("lmdb:{}?map_size=huge", "'map_size'; expected a size"),
        ("lmdb:{}?sync=perhaps", "'sync'; expected true or false"),
        ("lmdb:{}?max_readers=many", "'max_readers'; expected an integer"),
        ("skiplist:/?lock_timeout=-1", "'lock_timeout'; expected a number of seconds"),
        ("memory:/?sync=always", "'sync'; expected manual or commit"),
        ("memory:/?writers=many", "'writers'; expected serial or optimistic"),
        ("leveldb:{}?compression=zip", "'compression'; expected snappy or none"),
    ],
)
def test_bad_parameter_values(tmp_path: Path, url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        from_url(url.format(tmp_path))


def test_memory_sync_needs_a_file() -> None:
    for url in ("memory:/?sync=commit", "skiplist:/?sync=commit"):
        with pytest.raises(ConfigError, match="needs a file"):
            from_url(url)


def test_skiplist_with_a_path_is_the_file_backed_memory_engine(tmp_path: Path) -> None:
    with from_url(f"skiplist:{tmp_path}/data.acid") as engine:
        assert engine.persistent and engine.url == f"skiplist:{tmp_path}/data.acid"


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plyvel", None)  # import plyvel fails
    monkeypatch.delitem(sys.modules, "acid.engines.leveldb", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'acid\[leveldb\]'"):
        from_url("leveldb:/tmp/never")


def test_register_and_module_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_acid_plugin")
    opened: list[EngineURL] = []

    def factory(url: EngineURL) -> Engine:
        opened.append(url)
        return SkipListEngine()

    module.__dict__["setup"] = lambda: register("fakekv", factory)
    exec("setup()", module.__dict__)  # what a plugin's import would do
    monkeypatch.setitem(sys.modules, "fake_acid_plugin", module)
    with from_url("fake_acid_plugin+fakekv:/data?x=1") as engine:
        assert isinstance(engine, SkipListEngine)
    assert opened[0].params == {"x": "1"} and opened[0].module == "fake_acid_plugin"
    assert "fakekv" in known_schemes()
    with pytest.raises(ConfigError, match="cannot be imported"):
        from_url("no_such_module_xyz+fakekv:/")


def test_resolve_params_fills_defaults() -> None:
    spec = {"n": Param(Param.INT, 3), "flag": Param(Param.BOOL, False)}
    assert resolve_params(parse_url("x:/?flag=yes"), spec) == {"n": 3, "flag": True}


def test_url_parsing_lives_in_its_own_module() -> None:
    from acid import engines
    from acid.engines import _url

    for name in ("EngineURL", "Param", "parse_url", "parse_size", "parse_bool"):
        assert getattr(engines, name) is getattr(_url, name)
    assert engines.resolve_params is _url.resolve_params
    assert engines.parse_url.__module__ == "acid.engines._url"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("0", 0.0), ("0.5", 0.5), ("inf", math.inf)]
)
def test_parse_seconds(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["nan", "-1", "-inf", "", "soon"])
def test_bad_seconds(text: str) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        parse_seconds(text)


def test_param_bounds_apply_to_urls_and_keywords() -> None:
    spec = {"n": Param(Param.INT, 3, low=1, high=10), "t": Param(Param.SECONDS, 1.0)}
    assert resolve_params(parse_url("x:/?n=10&t=inf"), spec) == {"n": 10, "t": math.inf}
    with pytest.raises(
        ConfigError,
        match="bad value '0' for parameter 'n'; expected a number from 1 to 10",
    ):
        resolve_params(parse_url("x:/?n=0"), spec)
    with pytest.raises(ConfigError, match="bad value 11 for parameter 'n'"):
        check_params("x", spec, n=11)
    with pytest.raises(ConfigError, match="bad value nan for parameter 't'"):
        check_params("x", spec, t=math.nan)
    check_params("x", spec, n=1, t=0)
