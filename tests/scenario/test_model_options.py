"""The [config."MODEL"] and [inputs."MODEL"] tables of a scenario: validation and lookup."""
import pytest

from harness.scenario import model_options


@pytest.mark.parametrize("entry, says", [
    ({"shape": ["batch", 16, 3]}, None),
    ({"shape": ["batch", "size"], "dtype": "int64", "low": 1, "high": 9}, None),
    ({"shape": [4], "dtype": "bool"}, None),
    ({"shape": ["batch", 8], "low": -1.0, "high": 1.0}, None),
    ({"shape": ["batch", 8], "std": 0.5, "dtype": "bfloat16"}, None),
    ({"shape": []}, "a non-empty list"),
    ({"shape": ["batch", 0]}, "0 is neither"),
    ({"shape": ["batch", "length"]}, "'length' is neither"),
    ({"shape": ["batch", 2.5]}, "2.5 is neither"),
    ({"shape": [2], "dtype": "float8"}, "a dtype among"),
    ({"shape": [2], "dtype": "int64"}, "integer bounds"),
    ({"shape": [2], "dtype": "int64", "low": 5, "high": 5}, "low < high"),
    ({"shape": [2], "dtype": "int32", "high": 9, "std": 1.0}, "no std"),
    ({"shape": [2], "dtype": "bool", "high": 2}, "coin flip"),
    ({"shape": [2], "low": 1.0}, "both low and high"),
    ({"shape": [2], "std": 0}, "std > 0"),
    ({"shape": [2], "mean": 1}, "only the keys"),
    ([2, 3], "an inline table"),
])
def test_an_inputs_entry_is_checked(entry, says):
    problem = model_options.input_problem(entry)
    assert (problem is None) if says is None else (says in problem), problem


def test_tables_are_checked_and_every_problem_named():
    problems = []
    data = {"config": {"m:a": {"n": 2, "when": object()}, "m:b": 3},
            "inputs": {"m:c": {}, "m:d": {"x": {"shape": [0]}}}}
    tables = model_options.check_tables(data, "s.toml", problems)
    assert len(problems) == 4 and tables["config"]["m:a"]["n"] == 2
    assert any("config.'m:a'.when" in p for p in problems) and any("config.'m:b': must be a table" in p
                                                                  for p in problems)
    assert any("inputs.'m:c': empty" in p for p in problems) and any("inputs.'m:d'.x" in p for p in problems)


def test_options_for_takes_the_one_matching_key():
    tables = {"config": {"timm:vit_*": {"img_size": 32}}, "inputs": {"p.m:f": {"x": {"shape": [2]}}}}
    assert model_options.options_for(tables, "timm:vit_tiny") == {"config": {"img_size": 32}, "inputs": {}}
    assert model_options.options_for(tables, "p.m:f") == {"config": {}, "inputs": {"x": {"shape": [2]}}}
    assert model_options.key_problems(tables, ["timm:vit_tiny", "p.m:f"], "s.toml") == []
    assert "names none" in model_options.key_problems(tables, ["p.m:f"], "s.toml")[0]
