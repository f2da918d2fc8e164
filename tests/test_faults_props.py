"""Fault suite, part 3: property-based tests of the flag parsers and the file readers (hypothesis).

Whatever text or bytes come in, a parser either returns a value or raises seadeploy's own one-line
``SeadeployError`` (argparse type errors for the validators) — never anything else.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seadeploy import cli
from seadeploy.errors import ConfigError, InputError, SeadeployError
from seadeploy.export.lint import lint_onnx
from seadeploy.fileio import read_json
from seadeploy.runfolder import Checkpoint
from seadeploy.train.state import load_train_state
from seadeploy.validate.judge import check_replay

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

literals = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                        | st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner), max_leaves=6)


@FAST
@given(st.text(max_size=40))
def test_parse_value_never_raises(text):
    """Any text is a literal or kept as a stripped string; nothing is ever evaluated."""
    value = cli.parse_value(text)
    if isinstance(value, str):
        assert value == text.strip()


@FAST
@given(literals)
def test_parse_value_round_trips_literals(value):
    """``repr`` of a literal parses back to an equal value (strings stay strings)."""
    if isinstance(value, str) and value.lower() in ("true", "false", "none", "null"):
        return
    got = cli.parse_value(value if isinstance(value, str) else repr(value))
    assert got == value and type(got) is type(value)


@FAST
@given(st.lists(st.text(max_size=20), max_size=5))
def test_parse_kv_args_returns_dict_or_config_error(items):
    try:
        out = cli.parse_kv_args(items)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(k, str) and k and "-" not in k for k in out)
    assert len(out) <= len(items)


@FAST
@given(st.text(max_size=20))
def test_validators_accept_only_what_they_promise(text):
    for fn, ok in ((cli.positive_int, lambda v: isinstance(v, int) and v >= 1),
                   (cli.non_negative_int, lambda v: isinstance(v, int) and v >= 0),
                   (cli.positive_float, lambda v: math.isfinite(v) and v > 0),
                   (cli.non_negative_float, lambda v: math.isfinite(v) and v >= 0),
                   (cli.finite_float, math.isfinite)):
        try:
            value = fn(text)
        except argparse.ArgumentTypeError:
            continue
        assert ok(value), (fn.__name__, text, value)


@FAST
@given(st.text(max_size=12))
def test_device_validator(text):
    try:
        value = cli.device(text)
    except argparse.ArgumentTypeError:
        return
    assert value in ("cpu", "mps", "cuda") or value.startswith("cuda:")


def _only_our_errors(fn, *args):
    try:
        fn(*args)
    except SeadeployError as exc:
        assert exc.exit_code == 2
        return False
    return True


@FAST
@given(st.binary(max_size=300))
def test_read_json_any_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("j") / "x.json"
    p.write_bytes(data)
    _only_our_errors(read_json, p)


@FAST
@given(st.binary(max_size=300))
def test_checkpoint_load_any_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("c") / "checkpoint.safetensors"
    p.write_bytes(data)
    assert not _only_our_errors(Checkpoint.load, p)


@FAST
@given(st.binary(max_size=300))
def test_train_state_any_bytes(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("s")
    (d / "train_state.pt").write_bytes(data)
    assert not _only_our_errors(load_train_state, d)


@FAST
@given(st.binary(max_size=200))
def test_lint_any_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("l") / "model.onnx"
    p.write_bytes(data)
    _only_our_errors(lint_onnx, p)


@FAST
@given(st.integers(0, 3), st.sampled_from(["float32", "float64", "int64"]), st.integers(0, 4),
       st.lists(st.integers(-3, 12), max_size=4) | st.lists(st.floats(-1, 12), max_size=4))
def test_replayed_inputs_are_checked(n, dtype, ndim_extra, labels):
    """Replayed inputs are used only when they are finite float images with one in-range integer label each."""
    x = np.zeros((n, 3, 4, 4)[: 1 + ndim_extra] if ndim_extra < 3 else (n, 3, 4, 4), dtype=dtype)
    y = np.array(labels) if labels else None
    try:
        check_replay({"data": (x, y)}, "inputs.npz", 10)
    except InputError:
        return
    assert x.dtype.kind == "f" and x.ndim == 4 and len(x) >= 1
    if y is not None:
        assert y.dtype.kind in "iu" and len(y) == len(x) and y.min() >= 0 and y.max() < 10


@pytest.mark.parametrize("text", ["1e400", "-0", "0x10", " 7 ", "1_000"])
def test_validators_edge_texts(text):
    """Python's own int/float grammar decides (``1_000`` is 1000); overflow to inf is refused."""
    try:
        v = cli.positive_float(text)
    except argparse.ArgumentTypeError:
        assert text in ("1e400", "-0", "0x10")
        return
    assert math.isfinite(v) and v > 0
