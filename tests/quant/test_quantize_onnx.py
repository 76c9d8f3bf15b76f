"""quantize_onnx end to end on tiny models: the QDQ graph, its accuracy against fp32, OpenVINO,
simulated low-bit settings, bias correction, and the errors it must give."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))

import quant_helpers as qh  # noqa: E402

from edgeprune.quant import QuantError, QuantizeConfig, quantize_onnx  # noqa: E402
from edgeprune.quant.metrics import sqnr_db  # noqa: E402


@pytest.fixture
def tiny(tmp_path, onnx_models):
    return qh.with_preprocess(onnx_models.tiny_cnn(tmp_path / "tiny.onnx", channels=16))


@pytest.fixture
def calib(tmp_path):
    return qh.folder_manifest(tmp_path, qh.image_folder(tmp_path / "images", count=24), count=16, holdout=8)


def _inits(model):
    return {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}


def test_aciq_int8_qdq_graph_and_accuracy(tmp_path, tiny, calib):
    result = quantize_onnx(tiny, calib, tmp_path / "q", QuantizeConfig(openvino=False), progress=False)
    r = result.report
    assert result.files["onnx"] == tmp_path / "q" / "model.onnx"
    assert json.loads((tmp_path / "q" / "quantize.json").read_text())["method"] == "aciq"
    assert r["real_int8"] and not r["simulated"]
    model = onnx.load(str(result.files["onnx"]))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = _inits(model)
    dq_weights = [inits[n.input[0]] for n in model.graph.node
                  if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim > 1]
    assert len(dq_weights) == 2 and all(w.dtype == np.int8 for w in dq_weights)  # conv + fc
    conv_scale = [inits[n.input[1]] for n in model.graph.node
                  if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4][0]
    assert conv_scale.shape == (16,)  # per output channel
    acts = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert acts and all(z.dtype == np.uint8 for z in acts)  # uint8 activations
    meta = {p.key: p.value for p in model.metadata_props}
    assert "edgeprune.preprocess" in meta and json.loads(meta["edgeprune.quant"])["real_int8"] is True
    assert r["evaluation"]["samples"] == "holdout" and r["evaluation"]["count"] == 8
    assert r["sqnr_db"] > 15 and r["top1_agreement"] >= 0.85  # minmax gets 18.4 dB on this model too
    assert r["ops_left_in_float"] == {}


@pytest.mark.parametrize("reduce_range, code_bits", [("off", 8), ("on", 7)])
def test_weights_carry_our_per_channel_scales_exactly(tmp_path, tiny, calib, reduce_range, code_bits):
    from edgeprune.quant.aciq import quantize_symmetric, weight_alphas

    result = quantize_onnx(tiny, calib, tmp_path / "q", QuantizeConfig(openvino=False, reduce_range=reduce_range),
                           progress=False)
    assert result.report["weight_code_bits"] == code_bits and result.report["real_int8"]
    model = onnx.load(str(result.files["onnx"]))
    inits = _inits(model)
    w = _inits(onnx.load(str(tiny)))["conv1.weight"].astype(np.float64)
    codes, scales = quantize_symmetric(w, weight_alphas(w, code_bits), code_bits)
    assert np.abs(codes).max() == 2 ** (code_bits - 1) - 1  # the full grid is used, and no more
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
          and inits[n.input[0]].ndim == 4][0]
    np.testing.assert_array_equal(inits[dq.input[0]], codes.astype(np.int8))
    np.testing.assert_allclose(inits[dq.input[1]], scales, rtol=1e-6)


def test_openvino_loads_the_qdq_model_and_matches_ort(tmp_path, tiny, calib):
    pytest.importorskip("openvino")
    result = quantize_onnx(tiny, calib, tmp_path / "q", QuantizeConfig(openvino=True), progress=False)
    assert result.files["openvino"].name == "model.xml" and result.files["openvino_bin"].is_file()
    ov = result.report["openvino"]
    assert ov["sqnr_vs_ort_int8_db"] > 20 and ov["top1_agreement_vs_ort_int8"] >= 0.85
    kinds = " ".join(ov["layers_by_precision_and_kernel"])
    assert "u8" in kinds or "i8" in kinds  # OpenVINO runs the convolutions in integer precision


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_baselines_use_onnxruntime_calibrators(tmp_path, tiny, calib, method):
    r = quantize_onnx(tiny, calib, tmp_path / method, QuantizeConfig(method=method, openvino=False), progress=False).report
    assert r["activation_ranges"]["source"].startswith("onnxruntime")
    assert r["sqnr_db"] > 15


def test_low_bit_settings_are_simulated_and_reported(tmp_path, tiny, calib):
    r8 = quantize_onnx(tiny, calib, tmp_path / "w8", QuantizeConfig(openvino=False), progress=False).report
    r4 = quantize_onnx(tiny, calib, tmp_path / "w4a4", QuantizeConfig(weight_bits=4, act_bits=4), progress=False).report
    assert not r4["real_int8"] and r4["simulated"] and "simulated" in r4["execution"]
    assert r4["openvino"] is None  # no IR for uint4 activations
    assert r4["sqnr_db"] < r8["sqnr_db"]  # fewer bits, more noise
    model = onnx.load(str(tmp_path / "w4a4" / "model.onnx"))
    inits = _inits(model)
    weights = [inits[n.input[0]] for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim > 1]
    assert all(np.abs(w.astype(int)).max() <= 127 for w in weights)
    # ACIQ below 8 bits allocates bits per channel under the 4-bit average
    conv = r4["weights"]["layers"][0]
    assert conv["mean_bits"] == pytest.approx(4, abs=0.75)
    act_types = {i.data_type for i in model.graph.initializer if i.name.endswith("zero_point") and not i.dims}
    assert onnx.TensorProto.UINT4 in act_types  # 4-bit activations: uint4 QuantizeLinear


def test_bias_correction_folds_into_the_bias(tmp_path, tiny, calib):
    plain = quantize_onnx(tiny, calib, tmp_path / "plain", QuantizeConfig(weight_bits=4, openvino=False),
                          progress=False)
    fixed = quantize_onnx(tiny, calib, tmp_path / "bc", QuantizeConfig(weight_bits=4, bias_correction=True,
                                                                       openvino=False), progress=False)
    layer = fixed.report["weights"]["layers"][0]
    assert fixed.report["bias_correction"] == "data" and layer["bias_correction_abs_max"] > 0
    assert plain.report["weights"]["layers"][0]["bias_correction_abs_max"] is None
    both = quantize_onnx(tiny, calib, tmp_path / "both", QuantizeConfig(weight_bits=4, bias_correction="both",
                                                                         openvino=False), progress=False)
    assert "xi_range" in both.report["weights"]["layers"][0]
    with pytest.raises(QuantError, match="bias_correction must be"):
        quantize_onnx(tiny, calib, tmp_path / "x", QuantizeConfig(bias_correction="sometimes"))


def test_expected_output_is_the_layer_applied_to_the_mean_input():
    from onnx import helper

    from edgeprune.quant.bias_correction import expected_output

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 9, 9)).astype(np.float32) + 0.7
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1, 1, 1, 1], strides=[2, 2], kernel_shape=[3, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(w, "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(expected_output(node, w, x.mean(0)), y.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_an_op_that_cannot_be_quantized_is_named(tmp_path, tiny, calib):
    model = onnx.load(str(tiny))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.domain, relu.op_type = "com.example", "FancyRelu"
    model.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    onnx.save(model, str(tmp_path / "custom.onnx"))
    out = tmp_path / "never"
    with pytest.raises(QuantError, match=r"node '/layer1/relu/Relu' has op com\.example:FancyRelu"):
        quantize_onnx(tmp_path / "custom.onnx", calib, out, progress=False)
    assert not out.exists()  # nothing written


def test_bad_settings(tmp_path, tiny, calib):
    with pytest.raises(QuantError, match="unknown quantization method 'kl'"):
        quantize_onnx(tiny, calib, tmp_path / "x", QuantizeConfig(method="kl"))
    with pytest.raises(QuantError, match="activation bits must be one of 4, 8"):
        quantize_onnx(tiny, calib, tmp_path / "x", QuantizeConfig(act_bits=6))
    with pytest.raises(QuantError, match="weight bits must be an integer from 2 to 8"):
        quantize_onnx(tiny, calib, tmp_path / "x", QuantizeConfig(weight_bits=16))


@pytest.fixture(scope="module")
def resnet20_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    import torch
    from torch_helpers import randomize_batchnorm

    from edgeprune.export import ExportOptions, export_model
    from edgeprune.models import build_model
    from edgeprune.models.preprocess import FASHION_MNIST

    torch.manual_seed(0)  # the same network whatever ran before (a random one has near-tied logits)
    model, shape = build_model("edgeprune:resnet20")
    out = tmp_path_factory.mktemp("r20")
    export_model(randomize_batchnorm(model), shape, out, preprocess=FASHION_MNIST,
                 options=ExportOptions(formats=("onnx",)))
    return out / "model.onnx"


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed")
def test_resnet20_fashion_mnist_int8_tracks_fp32_and_evaluates_deployed(tmp_path, resnet20_onnx):
    calib = qh.manifest(tmp_path / "fm.toml", '[source]\nkind = "fashion-mnist"\n[samples]\ncount = 64\n'
                        'holdout = 64\nbatch_size = 32\n')
    r = quantize_onnx(resnet20_onnx, calib, tmp_path / "q", QuantizeConfig(bias_correction=True, openvino=False),
                      progress=False)
    assert r.report["sqnr_db"] > 25 and r.report["top1_agreement"] >= 0.9
    assert r.report["sqnr_db"] >= r.report["evaluation"]["sqnr_db_float_qdq"] - 1.5  # the kernels compute the file
    assert r.report["graph"]["weight_initializers"] == {"int8": 22}  # 21 convs + fc
    assert r.report["activation_ranges"]["one_sided"] > 0  # post-ReLU tensors found
    # the QDQ file keeps edgeprune.preprocess, so the deployed evaluator feeds it correctly
    from edgeprune.data import open_data
    from edgeprune.deployed_eval import evaluate_deployed

    data = open_data("fashion-mnist", train_subset=1, test_subset=200)
    fp32 = evaluate_deployed(resnet20_onnx, data.test)
    int8 = evaluate_deployed(r.files["onnx"], data.test)
    assert "metadata" in int8["preprocess"] and "int8" in str(int8["precision"])
    assert abs(int8["accuracy"] - fp32["accuracy"]) <= 0.05
    # SQNR helper sanity
    assert sqnr_db(np.ones(4), np.ones(4)) == float("inf")


def test_ops_the_quantizer_does_not_cover_stay_float_and_are_reported(tmp_path, tiny, calib):
    model = onnx.load(str(tiny))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    gemm.output[0] = "pre_softmax"
    model.graph.node.append(onnx.helper.make_node("Tanh", ["pre_softmax"], ["logits"], name="/tanh"))
    onnx.save(model, str(tmp_path / "tanh.onnx"))
    r = quantize_onnx(tmp_path / "tanh.onnx", calib, tmp_path / "q", QuantizeConfig(openvino=False), progress=False).report
    assert r["ops_left_in_float"] == {"Tanh": 1}
    assert r["top1_agreement"] >= 0.85


def test_fixed_batch_model(tmp_path, onnx_models, calib):
    model = qh.with_preprocess(onnx_models.tiny_cnn(tmp_path / "b1.onnx", batch=1, channels=16))
    r = quantize_onnx(model, calib, tmp_path / "q", QuantizeConfig(openvino=False), progress=False).report
    assert r["evaluation"]["count"] == 8 and r["real_int8"]
    with pytest.raises(QuantError, match="8-bit activations only"):
        quantize_onnx(model, calib, tmp_path / "q4", QuantizeConfig(act_bits=4, openvino=True))
