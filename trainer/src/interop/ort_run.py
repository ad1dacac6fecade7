#!/usr/bin/env python3
"""Runs ONNX models with onnxruntime for the interop tests.

    ort_run.py INPUT.npy MODEL.onnx OUT.npy [MODEL2.onnx OUT2.npy ...]

Loads the input with numpy (so the Rust .npy writer is checked by numpy
too), runs each model on CPU, one thread, all graph optimisations on (QDQ
pairs fused into QLinearConv, as bench/peers/onnxruntime_int8.py does), and
saves the `embedding` output as float32 .npy. When the `onnx` package is
installed each model also goes through onnx.checker. Prints one JSON line.
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
    inp, pairs = sys.argv[1], sys.argv[2:]
    assert pairs and len(pairs) % 2 == 0, __doc__
    x = np.load(inp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    checked = []
    for model, out in zip(pairs[::2], pairs[1::2]):
        if onnx is not None:
            onnx.checker.check_model(onnx.load(model), full_check=True)
            checked.append(model)
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        y = sess.run(["embedding"], {"x": x})[0]
        np.save(out, np.ascontiguousarray(y, dtype=np.float32))
    print(json.dumps({"onnxruntime": ort.__version__, "input_shape": list(x.shape), "onnx_checked": len(checked)}))


if __name__ == "__main__":
    main()
