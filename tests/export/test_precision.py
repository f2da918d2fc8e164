import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from seadeploy.errors import ConfigError
from seadeploy.export import checks
from seadeploy.export.onnx_export import export_onnx, node_module_map
from seadeploy.export.precision import (
    Fp16Policy,
    SampleReader,
    activation_bytes,
    calib_batch,
    convert_fp16,
    excitation_nodes,
    int8_target,
    quantize_int8,
)
from seadeploy.models.attention import create_attention
from tests.fixtures.tiny import INPUT_SHAPE, TinyNet, make_tiny_net


def _elem(proto):
    return {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}


def test_excitation_is_found_from_squeeze_to_gate(tiny_onnx):
    proto = onnx.load(tiny_onnx)
    modules = node_module_map(proto)
    found = {(n.op_type, modules[n.name]) for n in proto.graph.node if n.name in excitation_nodes(proto)}
    assert ("GlobalAveragePool", "layer1.attn") in found and ("Sigmoid", "layer1.attn") in found
    assert ("Conv", "layer1.attn.fc1") in found and ("Conv", "layer1.attn.fc2") in found
    assert not any(op == "Mul" for op, _ in found)  # the scale multiply runs in fp16
    assert not any(m in ("stem.0", "fc", "") for _, m in found)


def test_fp16_keeps_squeeze_excitation_and_sigmoid_in_fp32(tiny_net, tiny_onnx, tmp_path):
    dst = tmp_path / "model.fp16.onnx"
    record = convert_fp16(tiny_onnx, dst)
    assert record["keep_excitation"] and record["fp32_nodes"] >= 5
    half = onnx.load(dst)
    assert checks.check_model_full(dst)  # topologically sorted, typed
    elem, modules = _elem(onnx.shape_inference.infer_shapes(half)), node_module_map(half)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    for node in half.graph.node:
        kept = node.op_type in ("GlobalAveragePool", "Sigmoid") or modules[node.name].startswith("layer1.attn.fc")
        if kept and node.op_type != "Cast":
            assert elem[node.input[0]] == f32, node.name
    main_conv = next(n for n in half.graph.node if n.op_type == "Conv" and modules[n.name] == "stem.0")
    assert elem[main_conv.input[0]] == f16
    # no fp32 → fp16 → fp32 round trips between two fp32 nodes
    producers = {o: n for n in half.graph.node for o in n.output}
    for n in half.graph.node:
        if n.op_type == "Cast" and n.input[0] in producers:
            assert producers[n.input[0]].op_type != "Cast", n.name
    weights = {t.name: t.data_type for t in half.graph.initializer}
    assert weights["layer1.attn.fc1.weight"] == f32 and weights["stem.0.weight"] != f32
    assert half.graph.input[0].type.tensor_type.elem_type == f32  # keep_io_types
    assert all(modules.values()) or sum(1 for v in modules.values() if not v) <= 2
    ref = lambda x: tiny_net(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    assert checks.check_parity(ref, dst, checks.seeded_inputs((3, 16, 16), (3,)), atol=5e-3, rtol=5e-3)


def test_fp16_policies(tiny_onnx, tmp_path):
    proto = onnx.load(tiny_onnx)
    assert Fp16Policy.named("all-fp16").blocked_nodes(proto) == []
    assert len(Fp16Policy.named("reductions-fp32").blocked_nodes(proto)) < len(Fp16Policy().blocked_nodes(proto))
    with pytest.raises(ConfigError, match="attention-fp32"):
        Fp16Policy.named("half")


def test_int8_for_tensorrt_is_symmetric_per_channel(tiny_net, tiny_onnx, tmp_path):
    calib = np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)
    dst = tmp_path / "model.int8.onnx"
    record = quantize_int8(tiny_onnx, dst, calib, target="tensorrt")
    assert record["format"] == "QDQ" and record["per_channel"] and record["calib_samples"] == 16
    assert record["target"] == "tensorrt" and record["bias"] == "float32"
    proto = onnx.load(dst)
    assert checks.check_model_full(dst)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert q and dq
    for node in q + dq:  # symmetric: every zero point is 0, int8
        zp = inits[node.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    conv_w = next(n for n in dq if n.input[0].startswith("stem.0.weight"))
    assert inits[conv_w.input[1]].shape == (8,)  # one scale per output channel
    modules = node_module_map(proto)
    assert sum(1 for v in modules.values() if v) > len(modules) * 0.8  # Q/DQ nodes inherit a module
    ref = lambda x: tiny_net(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    result = checks.check_parity(ref, dst, checks.seeded_inputs((3, 16, 16), (4,)), atol=0.2, rtol=0.2)
    assert result.metrics["cosine"] > 0.99, result.detail


def test_int8_needs_samples(tiny_onnx, tmp_path):
    with pytest.raises(ConfigError):
        quantize_int8(tiny_onnx, tmp_path / "q.onnx", np.zeros((0, 3, 16, 16), np.float32))


def test_int8_for_ort_cpu_is_u8_and_runs_as_qlinearconv(tiny_onnx, tmp_path):
    calib = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    record = quantize_int8(tiny_onnx, tmp_path / "u8.onnx", calib, target="ort-cpu")
    assert record["target"] == "ort-cpu" and record["activations"] == "QUInt8 asymmetric" and record["bias"] == "int32"
    assert record["gate_broadcasts_dropped"] == 1  # the fp32 NCHWc gate copy is not quantised
    proto = onnx.load(tmp_path / "u8.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    x_q = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    assert inits[x_q.input[2]].dtype == np.uint8
    # the point of the form: ORT's CPU optimizer fuses DQ → Conv → Q into QLinearConv
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(tmp_path / "u8.onnx"), opts, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops
    with pytest.raises(ConfigError, match="ort-cpu, tensorrt"):
        quantize_int8(tiny_onnx, tmp_path / "bad.onnx", calib, target="u4")
    assert int8_target("u8").name == "ort-cpu" and int8_target("s8").name == "tensorrt"  # old spellings


def test_calibration_streams_batches(tiny_onnx, tmp_path):
    """A callable source is read batch by batch (rewound by calling it again); every sample is counted."""
    rng = np.random.default_rng(0)
    calls = []

    def batches():
        calls.append(1)
        return (rng.standard_normal((5, 3, 16, 16)).astype(np.float32) for _ in range(3))

    reader = SampleReader(np.zeros((70, 3, 16, 16), np.float32), batch=32)
    assert [len(reader.get_next()["x"]) for _ in range(3)] == [32, 32, 6] and reader.get_next() is None
    record = quantize_int8(tiny_onnx, tmp_path / "s.onnx", batches, target="ort-cpu")
    assert record["calib_samples"] == 15 and calls


def test_tiled_squeeze_is_kept_in_fp32_too(tmp_path):
    torch.manual_seed(0)
    model = TinyNet().eval()
    model.layer1.attn = create_attention("tse", 16, tile=2, reduction=4)
    proto = onnx.load(export_onnx(model, tmp_path / "tse.onnx", (3, 16, 16)))
    modules, found = node_module_map(proto), excitation_nodes(proto)
    kept = {(n.op_type, modules[n.name]) for n in proto.graph.node if n.name in found}
    assert any(op == "AveragePool" for op, _ in kept) and ("Sigmoid", "layer1.attn.gate") in kept
    assert {m for _, m in kept} >= {"layer1.attn.fc1", "layer1.attn.fc2"}
    assert not any(op in ("Resize", "Mul") for op, _ in kept)  # the broadcast and scale run in fp16


@pytest.mark.parametrize(("attn", "kwargs"), [("cbam", {}), ("sb", {}), ("se", {"squeeze": "std"}),
                                              ("se", {"squeeze": "avg_x_std"})])
def test_fp16_of_attention_whose_tensor_feeds_two_fp32_nodes(attn, kwargs, tmp_path):
    """The converter casts such a tensor once per blocked consumer; the duplicates must not break the graph."""
    model = make_tiny_net()  # the attention's own graph is what matters: the tiny net exports ~20x faster than a zoo one
    model.layer1.attn = create_attention(attn, 16, feat_size=INPUT_SHAPE[1:], reduction=4, **kwargs)
    model.eval()
    src = export_onnx(model, tmp_path / "model.onnx", INPUT_SHAPE)
    convert_fp16(src, tmp_path / "model.fp16.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.fp16.onnx")), full_check=True)
    x = torch.randn(3, *INPUT_SHAPE)
    sess = ort.InferenceSession(str(tmp_path / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert np.isfinite(got).all() and (cos > 0.999).all()


def test_calibration_batch_fits_the_memory_budget_and_does_not_change_the_ranges(tiny_onnx, tmp_path):
    proto = onnx.load(tiny_onnx)
    per_sample = activation_bytes(proto)
    assert per_sample > 0 and calib_batch(proto) == 32  # a 16-px graph fits the default budget at batch 32
    assert calib_batch(proto, budget=3 * per_sample) == 3 and calib_batch(proto, budget=1) == 1
    calib = np.random.default_rng(0).standard_normal((12, 3, 16, 16)).astype(np.float32)
    whole = quantize_int8(tiny_onnx, tmp_path / "a.onnx", calib, target="ort-cpu")
    single = quantize_int8(tiny_onnx, tmp_path / "b.onnx", calib, target="ort-cpu", batch=1)
    assert (whole["calib_batch"], single["calib_batch"]) == (32, 1)
    inits = [{t.name: t.SerializeToString() for t in onnx.load(tmp_path / n).graph.initializer} for n in ("a.onnx", "b.onnx")]
    assert inits[0] == inits[1]  # MinMax over every sample: the same scales and zero points whatever the batch


def test_int8_quantizes_a_descriptor_batchnorm_scale_per_channel_without_warnings(tmp_path, caplog):
    """SPSE/SB keep a BatchNormalization on 1-D descriptors: its scale's channels are on axis 0 (ORT's default
    axis 1 logged 'Axis 1 is out-of-range' per BN and fell back to one scale for the tensor)."""
    torch.manual_seed(0)
    model = make_tiny_net()
    model.layer1.attn = create_attention("spse", 16, reduction=4)
    model.eval()
    src = export_onnx(model, tmp_path / "model.onnx", INPUT_SHAPE)
    with caplog.at_level("WARNING"):
        quantize_int8(src, tmp_path / "model.int8.onnx", np.random.default_rng(0).standard_normal(
            (8, *INPUT_SHAPE)).astype(np.float32))
    assert not [r for r in caplog.records if "out-of-range" in r.getMessage()]
    proto = onnx.load(str(tmp_path / "model.int8.onnx"))
    producers = {o: n for n in proto.graph.node for o in n.output}
    bns = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert bns
    for bn in bns:
        dq = producers[bn.input[1]]
        assert dq.op_type == "DequantizeLinear" and {a.name: a.i for a in dq.attribute}.get("axis") == 0


def test_int8_for_openvino_leaves_the_attention_blocks_in_float(tiny_onnx, tmp_path):
    calib = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    record = quantize_int8(tiny_onnx, tmp_path / "ov.onnx", calib, target="openvino")
    assert record["target"] == "openvino" and record["float_attention"] and record["activations"] == "QUInt8 asymmetric"
    proto = onnx.load(tmp_path / "ov.onnx")
    modules = node_module_map(proto)
    dequantised = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    reads_int8 = {modules.get(n.name, "") for n in proto.graph.node
                  if n.op_type != "QuantizeLinear" and any(i in dequantised for i in n.input)}
    # squeeze, excitation and gate read float (the block's input map is the dequantised conv output it multiplies)
    assert not any(m.startswith("layer1.attn.") for m in reads_int8)
    assert any(m.startswith(("layer1.conv", "stem")) for m in reads_int8)  # the convolutions are int8
    assert len(record["excluded_nodes"]) >= 4
