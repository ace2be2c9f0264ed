"""dockyard.jsonc must give exactly what json gives, for every input Dockyard writes or reads."""

from __future__ import annotations

import json
import math

import pytest

from dockyard import jsonc

SAMPLES: list[object] = [
    {}, [], "", "plain", "ünïcödé ✓ \u2028", 0, -1, 2**70, 1.5, -0.0, 1e300, True, False, None,
    {"a": [1, 2, {"b": None}], "c": {"d": "e\n\"q\"\t\\"}, "z": [], "y": {}},
    {"b": 1, "a": 2, "c": [3, {"y": 1, "x": 2}]},
    [[[]], [{}], ["é", "\x00\x1f"]],
]


@pytest.mark.parametrize("obj", SAMPLES)
@pytest.mark.parametrize("kw", [{}, {"sort_keys": True}, {"separators": (",", ":")}, {"indent": 2},
                                {"indent": 4}, {"ensure_ascii": False},
                                {"sort_keys": True, "separators": (",", ":")}])
def test_dumps_matches_json(obj: object, kw: dict[str, object]) -> None:
    assert jsonc.dumps(obj, **kw) == json.dumps(obj, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("obj", SAMPLES)
def test_loads_round_trips_like_json(obj: object) -> None:
    text = json.dumps(obj)
    assert jsonc.loads(text) == json.loads(text)
    assert jsonc.loads(text.encode()) == json.loads(text.encode())
    assert jsonc.loads("  \n" + text + "\t ") == obj


def test_what_the_c_encoder_refuses_still_gets_json_behaviour() -> None:
    assert jsonc.dumps({1: "int key"}) == json.dumps({1: "int key"})
    assert jsonc.dumps((1, 2)) == "[1, 2]"
    assert jsonc.dumps({"p": object()}, default=lambda o: "obj") == '{"p": "obj"}'
    assert math.isnan(jsonc.loads("NaN"))
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonc.dumps({"p": object()})


@pytest.mark.parametrize("bad", ["", "{", '{"a": 1} x', "[1,]", b"\xff"])
def test_errors_are_jsons_own(bad: str | bytes) -> None:
    with pytest.raises(ValueError) as ours:
        jsonc.loads(bad)
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)
    assert type(ours.value) is type(theirs.value)


def test_bom_and_utf16_are_decoded_as_json_decodes_them() -> None:
    for raw in ('{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-8-sig")):
        try:
            expected: object = json.loads(raw)
        except ValueError as e:
            with pytest.raises(type(e)):
                jsonc.loads(raw)
        else:
            assert jsonc.loads(raw) == expected
