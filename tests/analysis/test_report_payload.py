"""``report.payload``: the compact column-wise JSON datasets the page decodes."""
import json

import pandas as pd

from harness.analysis.report.payload import Column, encode_dataset, round_sig


def test_round_sig_keeps_short_decimals():
    values = round_sig([12.3456789, 0.000123456, 123456.7, 0.0, float("nan"), -3.14159], 4)
    assert json.dumps([None if v != v else v for v in values.tolist()]) == \
        "[12.35, 0.0001235, 123500.0, 0.0, null, -3.142]"


def test_encoded_dataset_decodes_to_the_frame():
    frame = pd.DataFrame({"key": ["k1", "k2", "k1", "k3"], "model": ["b", "a", "b", "a"],
                          "env": ["t-2", "t-1", "t-1", None], "ms": [1.23456, None, 3.0, float("inf")],
                          "bs": [8, 16, 8, None]})
    text = encode_dataset(frame, [Column("model", "model", ref="case"), Column("bs", "batch", kind="int", ref="case"),
                                  Column("env", "env", order=["t-1", "t-2"]), Column("ms", "ms", kind="num", digits=3)],
                          ref_key="key")
    data = json.loads(text)
    assert data["n"] == 4 and data["dicts"]["env"] == ["t-1", "t-2"]
    case = data["refidx"]["case"]
    models = [data["dicts"]["model"][data["refs"]["case"]["model"][c]] for c in case]
    assert models == ["b", "a", "b", "a"]
    assert [data["refs"]["case"]["bs"][c] for c in case] == [8, 16, 8, None]
    assert [None if c < 0 else data["dicts"]["env"][c] for c in data["data"]["env"]] == ["t-2", "t-1", "t-1", None]
    assert data["data"]["ms"] == [1.23, None, 3, None]


def test_embedded_json_cannot_close_its_script_tag():
    frame = pd.DataFrame({"reason": ["</script><script>alert(1)</script>", "<!-- x"]})
    text = encode_dataset(frame, [Column("reason", "reason", kind="text")])
    assert "</" not in text and "<!--" not in text
    assert "</script><script>alert(1)</script>" in json.loads(text)["dicts"]["reason"]
