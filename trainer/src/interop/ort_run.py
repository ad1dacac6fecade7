#!/usr/bin/env python3
"""Runs ONNX models with onnxruntime for the interop tests.

    ort_run.py [--fused] INPUT.npy MODEL.onnx OUT.npy [MODEL2.onnx OUT2.npy ...]

Loads the input with numpy (so the Rust .npy writer is checked by numpy
too), runs each model on CPU, one thread, and saves the `embedding` output
as float32 .npy. By default only the basic graph optimisations run, so the
graph is evaluated as written (float Conv on dequantized weights: the QDQ
semantics). `--fused` turns all optimisations on: the QDQ pairs become
QLinearConv, as bench/peers/onnxruntime_int8.py times it; on x86 without
VNNI that kernel multiplies u8 x s8 pairs with VPMADDUBSW, whose 16-bit
sums saturate (onnxruntime's docs recommend 7-bit weights there), so its
results depend on the CPU. When the `onnx` package is installed each model
also goes through onnx.checker. Prints one JSON line.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

try:
    import onnx
except ImportError:  # the checker is optional
    onnx = None


def main():
    args = sys.argv[1:]
    fused = bool(args) and args[0] == "--fused"
    if fused:
        args = args[1:]
    assert len(args) >= 3 and len(args) % 2 == 1, __doc__
    inp, pairs = args[0], args[1:]
    x = np.load(inp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if fused
        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    )
    checked = []
    for model, out in zip(pairs[::2], pairs[1::2]):
        if onnx is not None:
            onnx.checker.check_model(onnx.load(model), full_check=True)
            checked.append(model)
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        y = sess.run(["embedding"], {"x": x})[0]
        np.save(out, np.ascontiguousarray(y, dtype=np.float32))
    print(json.dumps({"onnxruntime": ort.__version__, "input_shape": list(x.shape), "onnx_checked": len(checked), "fused": fused}))


if __name__ == "__main__":
    main()
