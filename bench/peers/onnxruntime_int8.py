#!/usr/bin/env python3
"""onnxruntime peer for the SeaCLR int8 engine.

Reads a `.seaclr` blob (the same weights, biases, scales and zero points the
edge engine runs), exports it as an ONNX QDQ model (QuantizeLinear /
DequantizeLinear around Conv / Relu / GlobalAveragePool, per-channel int8
weights, int32 bias), and times batch-1 single-thread inference with
onnxruntime (graph optimisations on, so QDQ becomes QLinearConv).

    pip install onnxruntime onnx numpy
    python3 bench/peers/onnxruntime_int8.py MODEL.seaclr [--iters 200] [--onnx out.onnx]

Prints one JSON line: median / mean / min nanoseconds per inference.
"""
import argparse
import json
import statistics
import struct
import time
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HEADER_LEN = 64
MAGIC = b"SEACLRM\0"


class Reader:
    """postcard decoding: varint integers, raw i8/u8, LE f32, length-prefixed bytes."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def varint(self):
        shift = value = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    def i8(self):
        v = struct.unpack_from("<b", self.data, self.pos)[0]
        self.pos += 1
        return v

    def u8(self):
        v = self.data[self.pos]
        self.pos += 1
        return v

    def f32(self):
        v = struct.unpack_from("<f", self.data, self.pos)[0]
        self.pos += 4
        return v

    def bytes(self):
        n = self.varint()
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def requant(self):
        return dict(
            input_zp=self.i8(),
            output_zp=self.i8(),
            act_min=self.i8(),
            act_max=self.i8(),
            multipliers=np.frombuffer(self.bytes(), dtype="<i4").astype(np.int64),
            shifts=np.frombuffer(self.bytes(), dtype=np.int8).astype(np.int64),
            output_scale=self.f32(),
        )


def parse_blob(data):
    assert data[:8] == MAGIC, "not a SeaCLR blob"
    version, header_len, payload_len, payload_crc = struct.unpack_from("<HHII", data, 8)
    assert version == 1 and header_len == HEADER_LEN, (version, header_len)
    payload = data[HEADER_LEN : HEADER_LEN + payload_len]
    assert zlib.crc32(payload) == payload_crc, "payload CRC mismatch"
    input_size, _pre, _dim, layer_count = struct.unpack_from("<HHHH", data, 20)
    r = Reader(payload)
    layers = []
    for _ in range(layer_count):
        tag = r.varint()
        if tag == 0:
            cin, cout, stride = r.varint(), r.varint(), r.u8()
            w = np.frombuffer(r.bytes(), dtype=np.int8).reshape(cout, 3, 3, cin)
            b = np.frombuffer(r.bytes(), dtype="<i4")
            layers.append(dict(kind="conv", cin=cin, cout=cout, stride=stride, w=w, b=b, rq=r.requant()))
        elif tag == 1:
            layers.append(dict(kind="gap", channels=r.varint(), rq=r.requant()))
        else:
            raise SystemExit("linear layers are not exported by this peer yet")
    return input_size, layers


def real_multiplier(rq):
    return rq["multipliers"].astype(np.float64) / 2.0**31 * np.power(2.0, rq["shifts"].astype(np.float64))


def build_qdq(input_size, layers):
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(array, name))
        return name

    def qdq(x, scale, zp, tag):
        s = const(f"{tag}_s", np.array(scale, dtype=np.float32))
        z = const(f"{tag}_zp", np.array(zp, dtype=np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"]))
        return f"{tag}_dq"

    x = qdq("x", 1.0 / 255.0, -128, "in")
    s_in = 1.0 / 255.0
    for i, l in enumerate(layers):
        rq = l["rq"]
        s_out = rq["output_scale"]
        if l["kind"] == "conv":
            w_scale = (real_multiplier(rq) * s_out / s_in).astype(np.float32)
            wq = const(f"w{i}", np.ascontiguousarray(l["w"].transpose(0, 3, 1, 2)))
            ws = const(f"w{i}_s", w_scale)
            wz = const(f"w{i}_zp", np.zeros(l["cout"], dtype=np.int8))
            nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [f"w{i}_dq"], axis=0))
            bq = const(f"b{i}", l["b"].astype(np.int32))
            bs = const(f"b{i}_s", (w_scale.astype(np.float64) * s_in).astype(np.float32))
            bz = const(f"b{i}_zp", np.zeros(l["cout"], dtype=np.int32))
            nodes.append(helper.make_node("DequantizeLinear", [bq, bs, bz], [f"b{i}_dq"], axis=0))
            s = l["stride"]
            nodes.append(
                helper.make_node("Conv", [x, f"w{i}_dq", f"b{i}_dq"], [f"conv{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[s, s])
            )
            y = f"conv{i}"
            if rq["act_min"] == rq["output_zp"]:
                nodes.append(helper.make_node("Relu", [y], [f"relu{i}"]))
                y = f"relu{i}"
        else:
            nodes.append(helper.make_node("GlobalAveragePool", [x], [f"gap{i}"]))
            y = f"gap{i}"
        x = qdq(y, s_out, rq["output_zp"], f"act{i}")
        s_in = s_out
    nodes.append(helper.make_node("Flatten", [x], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        "seaclr_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, input_size, input_size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, layers[-1]["rq"]["multipliers"].shape[0] if layers[-1]["kind"] == "conv" else layers[-1]["channels"]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("blob")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--onnx", help="also write the QDQ model here")
    ap.add_argument("--engine-embedding", help="int8 embedding of the same image from encode_bench --embedding-out")
    args = ap.parse_args()
    data = open(args.blob, "rb").read()
    size, layers = parse_blob(data)
    model = build_qdq(size, layers)
    if args.onnx:
        onnx.save(model, args.onnx)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    # Same synthetic image as the Rust bench: a dark ellipse on white.
    n = size
    yy, xx = np.mgrid[0:n, 0:n]
    yy, xx = yy - n // 2, xx - n // 2
    rng = np.random.default_rng(42)
    pixels = np.where(yy * yy + 2 * xx * xx < n * n // 8, rng.integers(0, 120, (n, n)), 255).astype(np.uint8)
    x = ((255.0 - pixels.astype(np.float32)) / 255.0).reshape(1, 1, n, n)
    agreement = {}
    if args.engine_embedding:
        rq = layers[-1]["rq"]
        y = sess.run(None, {"x": x})[0].reshape(-1)
        ort_q = np.clip(np.round(y / rq["output_scale"]) + rq["output_zp"], -128, 127).astype(np.int64)
        eng_q = np.array([int(v) for v in open(args.engine_embedding).read().split()], dtype=np.int64)
        a, b = (ort_q - rq["output_zp"]).astype(np.float64), (eng_q - rq["output_zp"]).astype(np.float64)
        cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        agreement = dict(max_abs_diff_int8_steps=int(np.abs(ort_q - eng_q).max()), cosine_vs_engine=round(cos, 6))
    for _ in range(args.warmup):
        sess.run(None, {"x": x})
    times = []
    for _ in range(args.iters):
        t = time.perf_counter_ns()
        sess.run(None, {"x": x})
        times.append(time.perf_counter_ns() - t)
    times.sort()
    print(
        json.dumps(
            dict(
                peer=f"onnxruntime {ort.__version__} QDQ int8, 1 thread",
                blob=args.blob,
                iters=args.iters,
                median_ns=times[len(times) // 2],
                mean_ns=int(statistics.mean(times)),
                min_ns=times[0],
                **agreement,
            )
        )
    )


if __name__ == "__main__":
    main()
