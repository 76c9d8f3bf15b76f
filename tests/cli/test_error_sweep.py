"""Every verb's error paths, swept: each bad input exits 2 (click usage errors too) with a
one-line message that names the file, field or option at fault, prints no traceback, and leaves
every file that was already there (the --out folder above all) as it was.

Cases are (verb, id, argv, needles): argv is formatted with the fixture paths ({w} the work
folder, {out} a pre-existing --out folder holding a user's files, {ro} a folder nothing can be
written into); every needle must appear in the output. A case marked KNOWN_GAP documents a gap
whose fix lies outside the CLI (xfail, strict: fixing it turns the case red until the mark goes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

import onnx_models  # noqa: E402  (tests/ is on sys.path)
import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from data_helpers import fake_fashion_mnist  # noqa: E402
from pipeline_helpers import write_tiny  # noqa: E402

from edgeprune.cli import main  # noqa: E402

FACTORIES = """\
import torch


def boom():
    raise ValueError("factory exploded")


def not_a_module():
    return 42


def no_shape():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
"""

TARGET = """\
name = "sweep-t"
description = "error sweep target"
align = 16

[runtime]
name = "ort"
threads = 1

[profile]
runs = 5
warmup = 1
batch = 1

[budgets]
latency_ms = { tiny = 1000.0 }
"""


def _report(**latency) -> dict:
    lat = {"median": 1.0, "p90": 1.2, "p99": 1.3, "min": 0.9, "mean": 1.05, "std": 0.1, "median_ci95": [0.95, 1.1]}
    lat.update(latency)
    return {
        "schema": "edgeprune.profile/1", "model": {"name": "tiny", "path": "tiny.onnx", "inputs": []},
        "runtime": "ort", "runtime_version": "1", "device": "cpu", "threads": 1, "precision": "f32", "batch": 1,
        "runs": 5, "warmup": 1, "latency_ms": lat, "throughput_fps": 1000.0, "machine": {"cpu": "x"},
        "edgeprune_version": "0", "target": "sweep-t",
    }


def _flip_data_byte(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    raw = bytearray(path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _save(path: Path, obj) -> Path:
    with open(path, "wb") as f:
        torch.save(obj, f)
    return path


def _train_folder(folder: Path, state: dict) -> Path:
    from edgeprune.files.manifest import write_manifest

    folder.mkdir()
    _save(folder / "model.pt", state)
    write_manifest(folder, "train", ["model.pt"], spec="edgeprune:resnet20", input_shape=[1, 1, 28, 28],
                   preprocess=None, classes=None, settings={})
    return folder


def _read_only_dir(w: Path) -> Path:
    """A folder that even root cannot write into (sysfs), else a chmod 555 one."""
    if os.geteuid() == 0:
        probe = Path("/sys")
        try:
            probe.joinpath(".edgeprune-sweep").mkdir()
        except OSError:
            return probe / "edgeprune-sweep"
        probe.joinpath(".edgeprune-sweep").rmdir()
        pytest.skip("no read-only folder available to root here")
    ro = w / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "out"


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    from edgeprune.models import build_model

    w = tmp_path_factory.mktemp("sweep")
    fake_fashion_mnist(w / "fmnist", n_train=64, n_test=32)
    tiny = onnx_models.tiny_cnn(w / "tiny.onnx")
    (w / "trunc.onnx").write_bytes(Path(tiny).read_bytes()[:150])
    (w / "garbage.onnx").write_bytes(os.urandom(512))
    (w / "empty.onnx").write_bytes(b"")
    import openvino as ov

    ov.save_model(ov.convert_model(str(tiny)), str(w / "nobin.xml"))
    (w / "nobin.bin").unlink()
    model, _ = build_model("edgeprune:resnet20")
    good = model.state_dict()
    _save(w / "good.pt", good)
    nan = {k: v.clone() for k, v in good.items()}
    nan["layer1.0.conv1.weight"].view(-1)[:12] = float("nan")
    _save(w / "nan.pt", nan)
    inf = {k: v.clone() for k, v in good.items()}
    inf["fc.weight"][0, 0] = float("inf")
    _save(w / "inf.pt", inf)
    shutil.copy(w / "good.pt", w / "crc.pt")
    _flip_data_byte(w / "crc.pt")
    (w / "trunc.pt").write_bytes((w / "good.pt").read_bytes()[:5000])
    (w / "garbage.pt").write_bytes(b"not a torch file at all")
    _save(w / "tensor.pt", torch.zeros(3))
    _save(w / "r56.pt", build_model("edgeprune:resnet56")[0].state_dict())
    _train_folder(w / "nanfolder", nan)
    tampered = _train_folder(w / "tampered", good)
    _save(tampered / "model.pt", nan)  # replaced after the manifest was written
    (w / "nomanifest").mkdir()
    (w / "unfinished").mkdir()
    (w / "unfinished" / "metrics.json").write_text("{}")
    (w / "afile.txt").write_text("a file, not a folder\n")
    (w / "sweep_factories.py").write_text(FACTORIES)
    (w / "sweep-t.toml").write_text(TARGET)
    (w / "bad.toml").write_text("this is = = not toml [\n")
    (w / "foreign_table.json").write_text(json.dumps({  # a latency table measured on another machine
        "schema": "edgeprune.latency_table/1", "target": "x86-ort-1t", "machine": {"cpu": "elsewhere", "isa": []},
        "runtime": {"runtime": "ort"}, "entries": {}}))
    # profile reports for `check`
    reports = {
        "malformed": "{\"schema\": ", "empty": "", "list": "[1, 2]", "object": "{}",
        "schema": json.dumps({**_report(), "schema": "edgeprune.profile/99"}),
        "noschema": json.dumps({k: v for k, v in _report().items() if k != "schema"}),
        "nan": json.dumps(_report(median=math.nan)), "inf": json.dumps(_report(median=math.inf)),
        "negative": json.dumps(_report(median=-1.0)), "string": json.dumps(_report(median="fast")),
        "outside": json.dumps(_report(median=2.0)), "ci3": json.dumps(_report(median_ci95=[0.9, 1.0, 1.1])),
        "reversed": json.dumps(_report(median_ci95=[1.1, 0.95])), "cinan": json.dumps(_report(median_ci95=[math.nan, 1.1])),
        "nop90": json.dumps({**_report(), "latency_ms": {"median": 1.0, "median_ci95": [0.9, 1.1]}}),
        "good": json.dumps(_report()),
    }
    for name, text in reports.items():
        (w / f"{name}.json").write_text(text)
    (w / "binary.json").write_bytes(b"\xff\xfe\x00\x81 not utf-8")
    # pipeline configs
    cfg = write_tiny(w / "pipe")
    text = cfg.read_text()
    configs = {
        "good": text,
        "edgeprune_nope": text.replace('spec = "edgeprune:resnet20"', 'spec = "edgeprune:nope"'),
        "torchvision_nope": text.replace('spec = "edgeprune:resnet20"', 'spec = "torchvision:nope"'),
        "nomodule": text.replace('spec = "edgeprune:resnet20"', 'spec = "nosuchpkg.nets:small"\nmean = [0.5]\nstd = [0.25]'),
        "nocallable": text.replace('spec = "edgeprune:resnet20"', 'spec = "sweep_factories:nothere"\nmean = [0.5]\nstd = [0.25]'),
        "unknown_section": text + "\n[bogus]\nx = 1\n",
        "bad_method": text.replace('method = "dtp"', 'method = "nope"'),
        "bad_target": text.replace('names = ["x86-ort-1t"]', 'names = ["nope"]'),
        "missing_weights": text.replace("[train]\nepochs = 2\nbatch_size = 32\nseed = 0\n", "").replace(
            'spec = "edgeprune:resnet20"', 'spec = "edgeprune:resnet20"\nweights = "missing.pt"'),
        "epochs_type": text.replace("[train]\nepochs = 2", '[train]\nepochs = "two"'),
        "no_train": text.replace("[train]\nepochs = 2\nbatch_size = 32\nseed = 0\n", ""),
        "one_shot": text.replace('method = "dtp"', 'method = "l1"').replace('budget = "flops=0.5"\nepochs = 2\n',
                                                                           'budget = "flops=0.5"\n'),
    }
    for name, body in configs.items():
        (w / "pipe" / f"{name}.toml").write_text(body)
    (w / "pipe" / "malformed.toml").write_text("[model\nspec = ")
    # the user's --out folder, which no failing command may touch
    out = w / "out"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_text("mine\n")
    (out / "sub" / "nested.txt").write_text("mine too\n")
    ro = _read_only_dir(w)
    sys.path.insert(0, str(w))
    yield {"w": w, "out": out, "ro": ro}
    sys.path.remove(str(w))


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


KNOWN_GAP = "known gap"
TRAIN = ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--data-root", "{w}/fmnist", "--epochs", "1",
         "--no-progress"]
PRUNE = ["prune", "edgeprune:resnet20", "--budget", "flops=0.5"]
EVAL = ["--data", "fashion-mnist", "--data-root", "{w}/fmnist"]
QUANT = ["--calib", "fashion-mnist", "--no-progress", "--out", "{out}"]
PIPE = "{w}/pipe/"


def _gap(reason: str):
    return pytest.mark.xfail(reason=f"{KNOWN_GAP}: {reason}", strict=True)


CASES = [
    # ---- train ------------------------------------------------------------------------------
    ("train", "out-read-only", TRAIN + ["--out", "{ro}"], ["--out", "cannot write"]),
    ("train", "out-is-a-file", TRAIN + ["--out", "{w}/afile.txt"], ["--out", "afile.txt"]),
    ("train", "out-under-a-file", TRAIN + ["--out", "{w}/afile.txt/sub"], ["--out", "afile.txt"]),
    ("train", "resume-without-checkpoint", TRAIN + ["--resume", "--out", "{out}"], ["--resume", "checkpoint.pt"]),
    ("train", "stop-after-past-epochs", TRAIN + ["--stop-after", "5", "--out", "{out}"], ["--stop-after", "--epochs 1"]),
    ("train", "stop-after-zero", TRAIN + ["--stop-after", "0", "--out", "{out}"], ["--stop-after"]),
    ("train", "epochs-zero", ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--epochs", "0", "--out", "{out}"], ["--epochs"]),
    ("train", "no-epochs", ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--out", "{out}"], ["--epochs"]),
    ("train", "no-data", ["train", "edgeprune:resnet20", "--epochs", "1", "--out", "{out}"], ["--data"]),
    ("train", "no-out", ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--epochs", "1"], ["--out"]),
    ("train", "unknown-zoo-model", ["train", "edgeprune:nope"] + TRAIN[2:] + ["--out", "{out}"], ["'nope'", "resnet20"]),
    ("train", "unknown-torchvision-model", ["train", "torchvision:nope"] + TRAIN[2:] + ["--out", "{out}"], ["'nope'"]),
    ("train", "unimportable-module", ["train", "nosuchpkg:make"] + TRAIN[2:] + ["--out", "{out}"], ["nosuchpkg"]),
    ("train", "factory-raises", ["train", "sweep_factories:boom"] + TRAIN[2:] + ["--out", "{out}"],
     ["sweep_factories:boom", "factory exploded"]),
    ("train", "factory-not-a-module", ["train", "sweep_factories:not_a_module"] + TRAIN[2:] + ["--out", "{out}"],
     ["sweep_factories:not_a_module", "not nn.Module"]),
    ("train", "spec-syntax", ["train", "not a spec!"] + TRAIN[2:] + ["--out", "{out}"], ["'not a spec!'"]),
    ("train", "spec-bad-kwargs", ["train", "edgeprune:resnet20(num_classes=)"] + TRAIN[2:] + ["--out", "{out}"],
     ["keyword"]),
    ("train", "weights-missing", TRAIN + ["--weights", "{w}/missing.pt", "--out", "{out}"], ["missing.pt", "does not exist"]),
    ("train", "weights-nan", TRAIN + ["--weights", "{w}/nan.pt", "--out", "{out}"],
     ["nan.pt: tensor 'layer1.0.conv1.weight' has 12 NaN values"]),
    ("train", "weights-inf", TRAIN + ["--weights", "{w}/inf.pt", "--out", "{out}"], ["inf.pt: tensor 'fc.weight'", "infinite"]),
    ("train", "weights-bad-crc", TRAIN + ["--weights", "{w}/crc.pt", "--out", "{out}"], ["crc.pt", "CRC"]),
    ("train", "weights-truncated", TRAIN + ["--weights", "{w}/trunc.pt", "--out", "{out}"], ["trunc.pt", "damaged"]),
    ("train", "weights-garbage", TRAIN + ["--weights", "{w}/garbage.pt", "--out", "{out}"], ["garbage.pt"]),
    ("train", "weights-wrong-model", TRAIN + ["--weights", "{w}/r56.pt", "--out", "{out}"], ["r56.pt", "do not fit"]),
    ("train", "input-shape-syntax", TRAIN + ["--input-shape", "1xax28", "--out", "{out}"], ["--input-shape"]),
    ("train", "data-unknown", ["train", "edgeprune:resnet20", "--data", "{w}/nodata", "--epochs", "1", "--out", "{out}"],
     ["nodata"]),
    ("train", "data-root-missing", ["train", "edgeprune:resnet20", "--data", "fashion-mnist", "--data-root", "{w}/nofm",
                                    "--epochs", "1", "--out", "{out}"], ["nofm"]),
    ("train", "mean-not-numbers", TRAIN + ["--mean", "abc", "--std", "0.3", "--out", "{out}"], ["--mean"]),
    ("train", "batch-size-one", TRAIN + ["--batch-size", "1", "--out", "{out}"], ["--batch-size"]),
    ("train", "augment-choice", TRAIN + ["--augment", "rotate", "--out", "{out}"], ["--augment"]),
    ("train", "threads-zero", TRAIN + ["--threads", "0", "--out", "{out}"], ["--threads"]),
    # ---- prune ------------------------------------------------------------------------------
    ("prune", "budget-syntax", ["prune", "edgeprune:resnet20", "--budget", "half", "--out", "{out}"], ["--budget"]),
    ("prune", "budget-range", ["prune", "edgeprune:resnet20", "--budget", "flops=1.5", "--out", "{out}"], ["--budget"]),
    ("prune", "method-unknown", PRUNE + ["--method", "nope", "--out", "{out}"], ["--method", "nope"]),
    ("prune", "align-syntax", PRUNE + ["--align", "x", "--out", "{out}"], ["--align"]),
    ("prune", "target-unknown", PRUNE + ["--target", "nope", "--out", "{out}"], ["nope"]),
    ("prune", "option-syntax", PRUNE + ["--option", "novalue", "--out", "{out}"], ["--option"]),
    ("prune", "min-keep-range", PRUNE + ["--min-keep", "2", "--out", "{out}"], ["--min-keep"]),
    ("prune", "unknown-zoo-model", ["prune", "edgeprune:nope", "--budget", "flops=0.5", "--out", "{out}"], ["'nope'"]),
    ("prune", "training-method-without-data", PRUNE + ["--method", "dtp", "--epochs", "1", "--out", "{out}"], ["--data"]),
    ("prune", "resume-without-checkpoint", PRUNE + ["--resume", "--out", "{out}"], ["--resume"]),
    ("prune", "out-read-only", PRUNE + ["--out", "{ro}"], ["cannot write"]),
    ("prune", "out-is-a-file", PRUNE + ["--out", "{w}/afile.txt"], ["--out", "afile.txt"]),
    ("prune", "weights-missing", PRUNE + ["--weights", "{w}/missing.pt", "--out", "{out}"], ["missing.pt"]),
    ("prune", "weights-garbage", PRUNE + ["--weights", "{w}/garbage.pt", "--out", "{out}"], ["garbage.pt"]),
    ("prune", "weights-wrong-model", PRUNE + ["--weights", "{w}/r56.pt", "--out", "{out}"], ["r56.pt", "do not fit"]),
    pytest.param("prune", "weights-nan", PRUNE + ["--weights", "{w}/nan.pt", "--out", "{out}"],
                 ["nan.pt: tensor 'layer1.0.conv1.weight'"]),
    pytest.param("prune", "weights-bad-crc", PRUNE + ["--weights", "{w}/crc.pt", "--out", "{w}/out-crc"], ["crc.pt", "CRC"]),
    pytest.param("prune", "factory-raises", ["prune", "sweep_factories:boom", "--budget", "flops=0.5", "--out", "{out}"],
                 ["sweep_factories:boom"]),
    ("prune", "no-budget", ["prune", "edgeprune:resnet20", "--out", "{out}"], ["--budget"]),
    # ---- export -----------------------------------------------------------------------------
    ("export", "src-neither-folder-nor-spec", ["export", "{w}/nothing-here", "--out", "{out}"], ["SRC", "nothing-here"]),
    ("export", "src-is-a-file", ["export", "{w}/tiny.onnx", "--out", "{out}"], ["SRC", "tiny.onnx"]),
    ("export", "src-folder-without-manifest", ["export", "{w}/nomanifest", "--out", "{out}"], ["nomanifest", "manifest.json"]),
    ("export", "src-folder-unfinished", ["export", "{w}/unfinished", "--out", "{out}"], ["unfinished", "did not finish"]),
    ("export", "src-folder-tampered", ["export", "{w}/tampered", "--out", "{out}"], ["tampered/model.pt", "manifest.json"]),
    ("export", "src-folder-nan-weights", ["export", "{w}/nanfolder", "--out", "{out}"],
     ["model.pt: tensor 'layer1.0.conv1.weight' has 12 NaN values"]),
    ("export", "unknown-zoo-model", ["export", "edgeprune:nope", "--out", "{out}"], ["'nope'"]),
    ("export", "factory-raises", ["export", "sweep_factories:boom", "--out", "{out}"], ["sweep_factories:boom", "exploded"]),
    ("export", "weights-nan", ["export", "edgeprune:resnet20", "--weights", "{w}/nan.pt", "--out", "{out}"],
     ["tensor 'layer1.0.conv1.weight'"]),
    ("export", "weights-bad-crc", ["export", "edgeprune:resnet20", "--weights", "{w}/crc.pt", "--out", "{out}"], ["crc.pt", "CRC"]),
    ("export", "weights-with-folder", ["export", "{w}/tampered", "--weights", "{w}/good.pt", "--out", "{out}"], ["--weights"]),
    ("export", "opset-too-old", ["export", "edgeprune:resnet20", "--opset", "11", "--out", "{out}"], ["opset"]),
    ("export", "batch-syntax", ["export", "edgeprune:resnet20", "--batch", "many", "--out", "{out}"], ["--batch"]),
    ("export", "batch-vs-input-shape", ["export", "edgeprune:resnet20", "--input-shape", "2x1x28x28", "--batch", "3",
                                        "--out", "{out}"], ["--batch", "--input-shape"]),
    ("export", "format-choice", ["export", "edgeprune:resnet20", "--format", "tflite", "--out", "{out}"], ["--format"]),
    ("export", "out-read-only", ["export", "edgeprune:resnet20", "--out", "{ro}"], ["--out", "cannot write"]),
    ("export", "out-is-a-file", ["export", "edgeprune:resnet20", "--out", "{w}/afile.txt"], ["--out", "afile.txt"]),
    ("export", "input-shape-syntax", ["export", "edgeprune:resnet20", "--input-shape", "big", "--out", "{out}"], ["--input-shape"]),
    # ---- quantize ---------------------------------------------------------------------------
    ("quantize", "model-missing", ["quantize", "{w}/missing.onnx"] + QUANT, ["missing.onnx"]),
    ("quantize", "model-truncated", ["quantize", "{w}/trunc.onnx"] + QUANT, ["trunc.onnx", "not a readable ONNX"]),
    ("quantize", "model-garbage", ["quantize", "{w}/garbage.onnx"] + QUANT, ["garbage.onnx"]),
    ("quantize", "model-empty", ["quantize", "{w}/empty.onnx"] + QUANT, ["empty.onnx"]),
    ("quantize", "model-is-ir", ["quantize", "{w}/nobin.xml"] + QUANT, ["nobin.xml", "ONNX"]),
    ("quantize", "model-is-a-folder", ["quantize", "{w}/nomanifest"] + QUANT, ["nomanifest"]),
    ("quantize", "calib-unknown-name", ["quantize", "{w}/tiny.onnx", "--calib", "nope", "--out", "{out}"], ["nope"]),
    ("quantize", "calib-malformed", ["quantize", "{w}/tiny.onnx", "--calib", "{w}/bad.toml", "--out", "{out}"], ["bad.toml"]),
    ("quantize", "weight-bits-range", ["quantize", "{w}/tiny.onnx", "--weight-bits", "9"] + QUANT, ["--weight-bits"]),
    ("quantize", "act-bits-choice", ["quantize", "{w}/tiny.onnx", "--act-bits", "3"] + QUANT, ["--act-bits"]),
    ("quantize", "method-choice", ["quantize", "{w}/tiny.onnx", "--method", "magic"] + QUANT, ["--method"]),
    ("quantize", "target-unknown", ["quantize", "{w}/tiny.onnx", "--target", "nope"] + QUANT, ["nope"]),
    ("quantize", "out-read-only", ["quantize", "{w}/tiny.onnx", "--calib", "fashion-mnist", "--out", "{ro}"], ["--out"]),
    ("quantize", "out-is-a-file", ["quantize", "{w}/tiny.onnx", "--calib", "fashion-mnist", "--out", "{w}/afile.txt"],
     ["--out", "afile.txt"]),
    ("quantize", "no-calib", ["quantize", "{w}/tiny.onnx", "--out", "{out}"], ["--calib"]),
    # ---- eval -------------------------------------------------------------------------------
    ("eval", "src-missing", ["eval", "{w}/missing.onnx"] + EVAL, ["missing.onnx"]),
    ("eval", "onnx-truncated", ["eval", "{w}/trunc.onnx"] + EVAL, ["trunc.onnx", "not a readable ONNX"]),
    ("eval", "onnx-garbage", ["eval", "{w}/garbage.onnx"] + EVAL, ["garbage.onnx"]),
    ("eval", "onnx-empty", ["eval", "{w}/empty.onnx"] + EVAL, ["empty.onnx"]),
    ("eval", "ir-without-bin", ["eval", "{w}/nobin.xml"] + EVAL, ["nobin.xml", "nobin.bin"]),
    ("eval", "no-data", ["eval", "{w}/tiny.onnx"], ["--data"]),
    ("eval", "folder-without-manifest", ["eval", "{w}/nomanifest"] + EVAL, ["nomanifest", "manifest.json"]),
    ("eval", "folder-tampered", ["eval", "{w}/tampered"] + EVAL, ["tampered/model.pt", "manifest.json"]),
    ("eval", "folder-nan-weights", ["eval", "{w}/nanfolder"] + EVAL, ["model.pt: tensor 'layer1.0.conv1.weight'"]),
    ("eval", "runtime-unknown", ["eval", "{w}/tiny.onnx", "--runtime", "tvm"] + EVAL, ["tvm"]),
    ("eval", "batch-size-zero", ["eval", "{w}/tiny.onnx", "--batch-size", "0"] + EVAL, ["--batch-size"]),
    ("eval", "data-unknown", ["eval", "{w}/tiny.onnx", "--data", "{w}/nodata"], ["nodata"]),
    ("eval", "json-read-only", ["eval", "{w}/tiny.onnx", "--json", "{ro}.json"] + EVAL, ["--json", "edgeprune-sweep.json"]),
    ("eval", "test-subset-zero", ["eval", "{w}/tiny.onnx", "--test-subset", "0"] + EVAL, ["--test-subset"]),
    # ---- profile ----------------------------------------------------------------------------
    ("profile", "model-missing", ["profile", "{w}/missing.onnx", "--runtime", "ort"], ["missing.onnx"]),
    ("profile", "onnx-truncated", ["profile", "{w}/trunc.onnx", "--runtime", "ort"], ["trunc.onnx"]),
    ("profile", "onnx-empty", ["profile", "{w}/empty.onnx", "--runtime", "ort"], ["empty.onnx"]),
    ("profile", "ir-without-bin", ["profile", "{w}/nobin.xml", "--runtime", "openvino"], ["nobin.xml", "nobin.bin"]),
    ("profile", "neither-target-nor-runtime", ["profile", "{w}/tiny.onnx"], ["--target", "--runtime"]),
    ("profile", "both-target-and-runtime", ["profile", "{w}/tiny.onnx", "--target", "x86-ort-1t", "--runtime", "ort"],
     ["--target", "--runtime"]),
    ("profile", "runtime-unknown", ["profile", "{w}/tiny.onnx", "--runtime", "tvm"], ["tvm"]),
    ("profile", "target-unknown", ["profile", "{w}/tiny.onnx", "--target", "nope"], ["nope"]),
    ("profile", "threads-with-target", ["profile", "{w}/tiny.onnx", "--target", "x86-ort-1t", "--threads", "2"], ["--threads"]),
    ("profile", "device-with-ort", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--device", "GPU"], ["--device"]),
    ("profile", "shape-syntax", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--shape", "1x3"], ["--shape"]),
    ("profile", "shape-unknown-input", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--shape", "pixels=1x3x16x16"],
     ["pixels"]),
    ("profile", "shape-twice", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--shape", "input=1x3x16x16",
                                "--shape", "input=2x3x16x16"], ["--shape"]),
    ("profile", "runs-zero", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--runs", "0"], ["--runs"]),
    ("profile", "precision-choice", ["profile", "{w}/tiny.onnx", "--runtime", "openvino", "--precision", "int3"],
     ["--precision"]),
    ("profile", "device-absent", ["profile", "{w}/tiny.onnx", "--runtime", "openvino", "--device", "NPU"], ["NPU"]),
    ("profile", "json-read-only", ["profile", "{w}/tiny.onnx", "--runtime", "ort", "--json", "{ro}.json"],
     ["--json", "edgeprune-sweep.json"]),
    # ---- compare ----------------------------------------------------------------------------
    ("compare", "a-missing", ["compare", "{w}/missing.onnx", "{w}/tiny.onnx", "--target", "x86-ort-1t"], ["missing.onnx"]),
    ("compare", "b-truncated", ["compare", "{w}/tiny.onnx", "{w}/trunc.onnx", "--target", "x86-ort-1t"], ["trunc.onnx"]),
    ("compare", "a-garbage", ["compare", "{w}/garbage.onnx", "{w}/tiny.onnx", "--target", "x86-ort-1t"], ["garbage.onnx"]),
    ("compare", "ir-without-bin", ["compare", "{w}/tiny.onnx", "{w}/nobin.xml", "--target", "x86-ort-1t"], ["nobin.bin"]),
    ("compare", "target-unknown", ["compare", "{w}/tiny.onnx", "{w}/tiny.onnx", "--target", "nope"], ["nope"]),
    ("compare", "no-target", ["compare", "{w}/tiny.onnx", "{w}/tiny.onnx"], ["--target"]),
    ("compare", "rounds-zero", ["compare", "{w}/tiny.onnx", "{w}/tiny.onnx", "--target", "x86-ort-1t", "--rounds", "0"],
     ["--rounds"]),
    ("compare", "shape-syntax", ["compare", "{w}/tiny.onnx", "{w}/tiny.onnx", "--target", "x86-ort-1t", "--shape", "x"],
     ["--shape"]),
    ("compare", "json-under-a-file", ["compare", "{w}/tiny.onnx", "{w}/tiny.onnx", "--target", "x86-ort-1t", "--json",
                                      "{w}/afile.txt/c.json"], ["--json", "afile.txt"]),
    # ---- check ------------------------------------------------------------------------------
    *[("check", name, ["check", "{w}/" + f"{name}.json", "--target", "{w}/sweep-t.toml"], [f"{name}.json", *needles])
      for name, needles in (
          ("malformed", ["JSON"]), ("empty", ["JSON"]), ("binary", ["JSON"]), ("list", ["profile report"]),
          ("object", ["missing key"]), ("schema", ["schema", "edgeprune.profile/99"]), ("noschema", ["schema"]),
          ("nan", ["latency_ms.median", "nan"]), ("inf", ["latency_ms.median"]), ("negative", ["latency_ms.median"]),
          ("string", ["latency_ms.median"]), ("outside", ["latency_ms.median", "median_ci95"]),
          ("ci3", ["latency_ms.median_ci95"]), ("reversed", ["latency_ms.median_ci95"]),
          ("cinan", ["latency_ms.median_ci95"]), ("nop90", ["latency_ms.p90"]))],
    ("check", "report-missing", ["check", "{w}/missing.json", "--target", "{w}/sweep-t.toml"], ["missing.json"]),
    ("check", "baseline-malformed", ["check", "{w}/good.json", "--baseline", "{w}/malformed.json", "--target",
                                     "{w}/sweep-t.toml"], ["malformed.json"]),
    ("check", "baseline-nan", ["check", "{w}/good.json", "--baseline", "{w}/nan.json", "--target", "{w}/sweep-t.toml"],
     ["nan.json", "latency_ms.median"]),
    ("check", "target-unknown", ["check", "{w}/good.json", "--target", "nope"], ["nope"]),
    ("check", "target-malformed", ["check", "{w}/good.json", "--target", "{w}/bad.toml"], ["bad.toml"]),
    ("check", "max-ratio-zero", ["check", "{w}/good.json", "--target", "{w}/sweep-t.toml", "--max-ratio", "0"], ["--max-ratio"]),
    ("check", "json-read-only", ["check", "{w}/good.json", "--target", "{w}/sweep-t.toml", "--json", "{ro}.json"],
     ["--json", "edgeprune-sweep.json"]),
    ("check", "no-reports", ["check", "--target", "{w}/sweep-t.toml"], ["REPORTS"]),
    # ---- pipeline ---------------------------------------------------------------------------
    ("pipeline", "config-missing", ["pipeline", PIPE + "missing.toml", "--out", "{out}"], ["missing.toml"]),
    ("pipeline", "config-malformed", ["pipeline", PIPE + "malformed.toml", "--out", "{out}"], ["malformed.toml"]),
    ("pipeline", "unknown-section", ["pipeline", PIPE + "unknown_section.toml", "--out", "{out}"], ["[bogus]"]),
    ("pipeline", "spec-unknown-zoo", ["pipeline", PIPE + "edgeprune_nope.toml", "--out", "{out}"], ["model.spec", "'nope'"]),
    ("pipeline", "spec-unknown-torchvision", ["pipeline", PIPE + "torchvision_nope.toml", "--out", "{out}"],
     ["model.spec", "'nope'"]),
    ("pipeline", "spec-unimportable-module", ["pipeline", PIPE + "nomodule.toml", "--out", "{out}"],
     ["model.spec", "nosuchpkg"]),
    ("pipeline", "spec-no-such-callable", ["pipeline", PIPE + "nocallable.toml", "--out", "{out}"],
     ["model.spec", "nothere"]),
    ("pipeline", "method-unknown", ["pipeline", PIPE + "bad_method.toml", "--out", "{out}"], ["prune.method"]),
    ("pipeline", "target-unknown", ["pipeline", PIPE + "bad_target.toml", "--out", "{out}"], ["targets.names[0]"]),
    ("pipeline", "weights-missing", ["pipeline", PIPE + "missing_weights.toml", "--out", "{out}"], ["model.weights"]),
    ("pipeline", "epochs-type", ["pipeline", PIPE + "epochs_type.toml", "--out", "{out}"], ["train.epochs"]),
    ("pipeline", "stop-after-past-dense-epochs", ["pipeline", PIPE + "good.toml", "--stop-after", "dense:99", "--out", "{out}"],
     ["--stop-after dense:99", "dense:1..2"]),
    ("pipeline", "stop-after-past-prune-epochs", ["pipeline", PIPE + "good.toml", "--stop-after", "prune:3", "--out", "{out}"],
     ["--stop-after prune:3", "prune:1..2"]),
    ("pipeline", "stop-after-unknown-stage", ["pipeline", PIPE + "good.toml", "--stop-after", "export:1", "--out", "{out}"],
     ["--stop-after", "dense:EPOCH"]),
    ("pipeline", "stop-after-zero", ["pipeline", PIPE + "good.toml", "--stop-after", "dense:0", "--out", "{out}"],
     ["--stop-after"]),
    ("pipeline", "stop-after-not-a-number", ["pipeline", PIPE + "good.toml", "--stop-after", "dense:x", "--out", "{out}"],
     ["--stop-after"]),
    ("pipeline", "stop-after-no-epoch", ["pipeline", PIPE + "good.toml", "--stop-after", "dense", "--out", "{out}"],
     ["--stop-after"]),
    ("pipeline", "stop-after-twice", ["pipeline", PIPE + "good.toml", "--stop-after", "dense:1", "--stop-after", "dense:2",
                                      "--out", "{out}"], ["--stop-after", "twice"]),
    ("pipeline", "stop-after-dense-not-trained", ["pipeline", PIPE + "no_train.toml", "--stop-after", "dense:1", "--out", "{out}"],
     ["--stop-after dense:1", "'dense'"]),
    ("pipeline", "stop-after-one-shot-prune", ["pipeline", PIPE + "one_shot.toml", "--stop-after", "prune:1", "--out", "{out}"],
     ["--stop-after prune:1", "'prune'"]),
    ("pipeline", "out-read-only", ["pipeline", PIPE + "good.toml", "--out", "{ro}"], ["--out", "cannot write"]),
    ("pipeline", "out-is-a-file", ["pipeline", PIPE + "good.toml", "--out", "{w}/afile.txt"], ["--out", "afile.txt"]),
    ("pipeline", "threads-zero", ["pipeline", PIPE + "good.toml", "--threads", "0", "--out", "{out}"], ["--threads"]),
    # ---- info -------------------------------------------------------------------------------
    ("info", "unknown-zoo-model", ["info", "edgeprune:nope"], ["'nope'", "resnet20"]),
    ("info", "unknown-torchvision-model", ["info", "torchvision:nope"], ["'nope'"]),
    ("info", "unimportable-module", ["info", "nosuchpkg:make"], ["nosuchpkg"]),
    ("info", "no-such-callable", ["info", "sweep_factories:nothere"], ["nothere"]),
    ("info", "factory-raises", ["info", "sweep_factories:boom"], ["sweep_factories:boom", "factory exploded"]),
    ("info", "factory-not-a-module", ["info", "sweep_factories:not_a_module"], ["not nn.Module"]),
    ("info", "factory-without-shape", ["info", "sweep_factories:no_shape"], ["--input-shape"]),
    ("info", "spec-syntax", ["info", "::"], ["'::'"]),
    ("info", "weights-missing", ["info", "edgeprune:resnet20", "--weights", "{w}/missing.pt"], ["missing.pt"]),
    ("info", "weights-nan", ["info", "edgeprune:resnet20", "--weights", "{w}/nan.pt"],
     ["nan.pt: tensor 'layer1.0.conv1.weight' has 12 NaN values"]),
    ("info", "weights-bad-crc", ["info", "edgeprune:resnet20", "--weights", "{w}/crc.pt"], ["crc.pt", "CRC"]),
    ("info", "weights-truncated", ["info", "edgeprune:resnet20", "--weights", "{w}/trunc.pt"], ["trunc.pt"]),
    ("info", "weights-garbage", ["info", "edgeprune:resnet20", "--weights", "{w}/garbage.pt"], ["garbage.pt"]),
    ("info", "weights-not-a-state-dict", ["info", "edgeprune:resnet20", "--weights", "{w}/tensor.pt"], ["tensor.pt", "state_dict"]),
    ("info", "weights-wrong-model", ["info", "edgeprune:resnet20", "--weights", "{w}/r56.pt"], ["r56.pt", "do not fit"]),
    ("info", "input-shape-syntax", ["info", "edgeprune:resnet20", "--input-shape", "0x1"], ["--input-shape"]),
    ("info", "json-read-only", ["info", "edgeprune:resnet20", "--json", "{ro}.json"], ["--json", "edgeprune-sweep.json"]),
    ("info", "json-is-a-folder", ["info", "edgeprune:resnet20", "--json", "{out}"], ["--json", "is a directory"]),
    ("prune", "latency-without-table", ["prune", "edgeprune:resnet20", "--budget", "latency=0.5", "--out", "{out}"],
     ["--latency-table", "latency budget", "edgeprune latency-table"]),
    ("prune", "latency-ms-negative", ["prune", "edgeprune:resnet20", "--budget", "latency_ms=-1", "--out", "{out}"],
     ["--budget", "latency_ms must be a positive number"]),
    ("prune", "latency-table-missing", ["prune", "edgeprune:resnet20", "--budget", "latency=0.5", "--latency-table",
                                        "{w}/none.json", "--out", "{out}"], ["--latency-table", "no such file"]),
    ("prune", "latency-table-malformed", ["prune", "edgeprune:resnet20", "--budget", "latency=0.5", "--latency-table",
                                          "{w}/malformed.json", "--out", "{out}"], ["malformed.json", "latency table"]),
    ("prune", "latency-table-elsewhere", ["prune", "edgeprune:resnet20", "--budget", "latency=0.5", "--latency-table",
                                          "{w}/foreign_table.json", "--out", "{out}"],
     ["foreign_table.json", "latency tables do not travel"]),
    # ---- latency-table ----------------------------------------------------------------------
    ("latency-table", "target-unknown", ["latency-table", "edgeprune:resnet20", "--target", "nope", "--out",
                                         "{w}/t.json"], ["nope"]),
    ("latency-table", "no-out", ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t"], ["--out"]),
    ("latency-table", "out-is-a-folder", ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t", "--out",
                                          "{out}"], ["--out", "is a directory"]),
    ("latency-table", "existing-malformed", ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t", "--out",
                                             "{w}/malformed.json"], ["malformed.json", "latency table"]),
    ("latency-table", "existing-not-a-table", ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t",
                                               "--out", "{w}/good.json"], ["good.json", "not a latency table"]),
    ("latency-table", "unknown-model", ["latency-table", "edgeprune:nope", "--target", "x86-ort-1t", "--out",
                                        "{w}/t.json"], ["'nope'"]),
    ("latency-table", "points-one", ["latency-table", "edgeprune:resnet20", "--target", "x86-ort-1t", "--out",
                                     "{w}/t.json", "--points", "1"], ["--points"]),
]


def _id(case) -> str:
    values = case.values if hasattr(case, "values") else case
    return f"{values[0]}-{values[1]}"


@pytest.mark.parametrize("verb, name, argv, needles", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_is_a_named_error(paths, verb, name, argv, needles):
    w, out = paths["w"], paths["out"]
    args = [a.format(w=w, out=out, ro=paths["ro"]) for a in argv]
    before_out, before_all = _snapshot(out), _snapshot(w)
    result = CliRunner().invoke(main, args)
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {output}\n{result.exception!r}"
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    missing = [n for n in needles if n.format(w=w) not in output]
    assert not missing, f"{missing} not in: {output}"
    assert _snapshot(out) == before_out, "the --out folder changed"
    after = _snapshot(w)
    changed = [k for k, v in before_all.items() if after.get(k) != v]
    assert not changed, f"pre-existing files changed or removed: {changed}"
    leftovers = [p.name for p in w.iterdir() if p.name.startswith(".out.")]
    assert not leftovers, leftovers


def test_the_sweep_covers_every_verb():
    """80+ bad inputs over all eleven verbs (the counts are in issue 14's report)."""
    verbs = [(c.values if hasattr(c, "values") else c)[0] for c in CASES]
    assert set(verbs) == {"train", "prune", "export", "quantize", "eval", "profile", "compare", "check", "pipeline", "info",
                          "latency-table"}
    assert len(CASES) >= 80
