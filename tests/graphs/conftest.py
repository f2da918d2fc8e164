"""Session cache of the fixture exports: each net of ``attention_nets`` exported once per exporter."""

from __future__ import annotations

import logging

import pytest

from tests.graphs import attention_nets


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, exporter)`` → path of ``name`` exported with ``"dynamo"`` or ``"torchscript"`` (cached)."""
    folder = tmp_path_factory.mktemp("attention-nets")
    cache: dict[tuple[str, str], object] = {}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" lines

    def get(name: str, exporter: str):
        key = (name, exporter)
        if key not in cache:
            path = folder / f"{name}.{exporter}.onnx"
            attention_nets.export(attention_nets.build(name), path, dynamo=exporter == "dynamo")
            cache[key] = path
        return cache[key]

    return get
