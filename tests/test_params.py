"""Script parameters converted against main()'s annotations (fedcore.params)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest

from fedcore.errors import ConfigError
from fedcore.params import convert_params


def main(
    ctx,
    rounds: int = 5,
    lr: float = 0.1,
    secure: bool = False,
    dp: float | None = None,
    name: str = "x",
    partition: Literal["iid", "dirichlet"] = "iid",
    floor: int | Literal["all"] = 1,
    sizes: list[int] | None = None,
    pair: tuple[int, str] = (1, "a"),
    label: Optional[str] = None,  # noqa: UP045 - the old spelling must work too
    loose=None,
    anything: Any = 1,
):
    return None


def test_text_converts_by_annotation() -> None:
    text = {
        "rounds": "3",
        "lr": "1e-3",
        "secure": "Yes",
        "dp": "none",
        "name": "123",
        "partition": "iid",
        "floor": "all",
        "sizes": "[1, 2]",
        "pair": '[2, "b"]',
        "label": "null",
        "loose": "[1]",
        "anything": "hello",
    }
    assert convert_params(main, text, from_text=True) == {
        "rounds": 3,
        "lr": 0.001,
        "secure": True,
        "dp": None,
        "name": "123",
        "partition": "iid",
        "floor": "all",
        "sizes": [1, 2],
        "pair": (2, "b"),
        "label": None,
        "loose": [1],
        "anything": "hello",
    }
    assert convert_params(main, {"floor": "4", "secure": "off", "dp": "0.5"}, from_text=True) == {
        "floor": 4,
        "secure": False,
        "dp": 0.5,
    }


def test_values_are_checked_and_a_string_stays_a_string() -> None:
    values = {"rounds": 3, "lr": 1, "secure": True, "name": "none", "label": "none", "floor": 2}
    assert convert_params(main, values) == {**values, "lr": 1.0}
    assert type(convert_params(main, {"lr": 1})["lr"]) is float


@pytest.mark.parametrize(
    "params, from_text, line",
    [
        ({"rounds": "abc"}, True, "--param rounds='abc': expected int"),
        ({"rounds": "2.5"}, True, "--param rounds='2.5': expected int"),
        ({"secure": "maybe"}, True, "--param secure='maybe': expected bool (true/false)"),
        ({"lr": "fast"}, True, "--param lr='fast': expected float"),
        ({"lr": "nan"}, True, "--param lr='nan': expected float"),
        ({"partition": "skewed"}, True, "--param partition='skewed': expected one of 'iid', 'dirichlet'"),
        ({"floor": "most"}, True, "--param floor='most': expected int | 'all'"),
        ({"sizes": '[1, "a"]'}, True, "--param sizes='[1, \"a\"]': expected list[int] | None"),
        ({"pair": "[1]"}, True, "--param pair='[1]': expected tuple[int, str]"),
        ({"rounds": 2.5}, False, "--param rounds=2.5: expected int"),
        ({"rounds": True}, False, "--param rounds=true: expected int"),
        ({"secure": 2}, False, "--param secure=2: expected bool (true/false)"),
        ({"name": 3}, False, "--param name=3: expected str"),
    ],
)
def test_a_value_that_does_not_convert_is_one_line(params: dict, from_text: bool, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert_params(main, params, from_text=from_text)
    assert str(info.value) == line


def test_a_long_value_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        convert_params(main, {"rounds": "9" * 50 + "x" * 500}, from_text=True)
    assert len(str(info.value)) < 120 and "..." in str(info.value)


def test_an_annotation_that_cannot_be_evaluated_counts_as_any() -> None:
    namespace: dict = {}
    exec(  # a script that names a type only imported for type checkers
        "from __future__ import annotations\n"
        "def main(ctx, model: Unknown = None, rounds: int = 1):\n    return None\n",
        namespace,
    )
    got = convert_params(namespace["main"], {"model": "[1]", "rounds": "2"}, from_text=True)
    assert got == {"model": [1], "rounds": 2}
