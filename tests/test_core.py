"""Registry, CLI helpers and artifacts (checkpoint, atomic writes)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from seadeploy.cli import entry_point, parse_kv_args, parse_value, run_main
from seadeploy.errors import BackendUnavailable, ConfigError, InputError, ParityFailure
from seadeploy.fileio import atomic_path, read_json, write_json
from seadeploy.registry import Registry
from seadeploy.runfolder import Checkpoint, ModelSpec, load_state_checked


def test_registry_register_get_and_errors():
    reg: Registry = Registry("thing")

    @reg.register("alpha")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha and "alpha" in reg and len(reg) == 1
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(alpha)
    with pytest.raises(ConfigError, match=r"Did you mean 'alpha'.*Valid choices: alpha"):
        reg.get("alpah")
    reg.register("beta")(lambda: 2)
    assert reg.names("b*") == ["beta"] and list(reg) == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("7", 7), ("0.5", 0.5), ("(7, 7)", (7, 7)), ("[2,2,4]", [2, 2, 4]), ("max", "max"), ("false", False),
     ("None", None), ("avg_x_std", "avg_x_std")],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parse_kv_args_rejects_missing_equals():
    assert parse_kv_args(["tile=7", "squeeze-fn=max"]) == {"tile": 7, "squeeze_fn": "max"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_kv_args(["tile"])


@pytest.mark.parametrize(("exc", "code"), [(ConfigError, 2), (InputError, 2), (ParityFailure, 1), (BackendUnavailable, 3)])
def test_run_main_maps_errors_to_exit_codes(exc, code, capsys):
    def fn(argv):
        raise exc("something is wrong\nNote: a hint")

    assert run_main(fn, []) == code
    err = capsys.readouterr().err
    assert err.startswith("error: something is wrong") and "Traceback" not in err


def test_entry_point_unknown_stage(capsys):
    assert entry_point(["nope"]) == 2
    assert "Valid choices" in capsys.readouterr().err


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_read_json_corrupt(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_json(p)


def test_model_spec_roundtrip_keeps_tuples_and_lists():
    spec = ModelSpec("resnet20_cifar", "tse", {"tile": (7, 7), "per_stage": [2, 4, 7]}, 10, 32)
    back = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and isinstance(back.attn_kwargs["tile"], tuple)


def test_checkpoint_roundtrip_and_corruption(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ck = Checkpoint(ModelSpec("resnet20_cifar", "se"), net.state_dict(), dataset="digits", metrics={"top1": 0.9})
    path = ck.save(tmp_path / "checkpoint.safetensors")
    back = Checkpoint.load(tmp_path)
    assert back.dataset == "digits" and back.metrics == {"top1": 0.9}
    for k, v in net.state_dict().items():
        torch.testing.assert_close(back.state_dict[k], v)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="corrupt"):
        Checkpoint.load(path)
    with pytest.raises(InputError, match="does not exist"):
        Checkpoint.load(tmp_path / "missing")


def test_load_state_checked_names_the_bad_tensor():
    net = nn.Linear(4, 2)
    bad = {"weight": torch.zeros(3, 4), "bias": torch.zeros(2)}
    with pytest.raises(InputError, match=r"'weight' has shape \(3, 4\), expected \(2, 4\)"):
        load_state_checked(net, bad)
