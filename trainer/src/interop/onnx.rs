//! ONNX export of the encoder: the int8 blob as a QDQ graph, and the float
//! model (BatchNorm folded) as a plain float graph.
//!
//! The protobuf is written by hand: only the few `onnx.proto` messages a
//! model needs (ModelProto, GraphProto, NodeProto, AttributeProto,
//! TensorProto, ValueInfoProto and the type messages), with the field
//! numbers of `onnx.proto` (proto2; repeated scalars unpacked). Tensors are
//! stored as little-endian `raw_data`. IR version 8, default opset 13.
//!
//! # The graphs
//!
//! Input `x`: float `[N, 1, S, S]`, the preprocessed gray image `p` (see
//! `seaclr_shared::preprocess`: gray, white padding to a square, area
//! resampling to `S`) as `x = (255 - p) / 255`, so the white background is 0.
//! Output `embedding`: float `[N, D]`.
//!
//! int8 (QDQ, the graph of `bench/peers/onnxruntime_int8.py`):
//! - `x` -> QuantizeLinear/DequantizeLinear with scale 1/255, zero point
//!   -128 (the blob's input encoding `q = 127 - p`);
//! - each 3x3 conv: int8 weights `[out][in][3][3]` (the blob's
//!   `[out][ky][kx][in]` transposed) through a per-channel (axis 0)
//!   DequantizeLinear with scale `w_scale[c] = M[c] * s_out / s_in` (M the
//!   real value of the Q31 multiplier and shift, so `s_in * w_scale / s_out`
//!   is the engine's requantization factor), zero point 0; int32 bias
//!   through DequantizeLinear with scale `s_in * w_scale[c]`; float `Conv`
//!   (pads 1, the blob's stride); `Relu` when the layer clamps at its output
//!   zero point (`Clip` for any other clamp); then QuantizeLinear /
//!   DequantizeLinear at the layer's output scale and zero point;
//! - global average pooling: `GlobalAveragePool`, then Q/DQ at its output
//!   scale and zero point;
//! - a linear layer: `Flatten`, weights as above (columns reordered from the
//!   blob's HWC to ONNX's CHW flattening), `Gemm` with `transB = 1`;
//! - `Flatten` to `[N, D]`: `embedding = output_scale * (q - output_zp)`,
//!   the dequantized int8 embedding.
//!
//! Run as written, the graph requantizes in float, the engine in fixed
//! point, so the two can differ by a step on rounding boundaries. With all
//! optimisations on, onnxruntime fuses the Q/DQ pairs into `QLinearConv`,
//! whose x86 kernel without VNNI can saturate 16-bit partial sums: see the
//! README for the measured agreement of both.
//!
//! float: `Conv` (+ `Relu`), `GlobalAveragePool`, `Flatten`, `Gemm`, with
//! the folded weights of [`crate::float_encoder::FloatEncoder`].

use anyhow::{Context, Result, anyhow, bail};
use seaclr_shared::blob::{Blob, Layer, Requant};

use crate::float_encoder::{FloatEncoder, FloatLayer};

/// ONNX IR version written.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 13;
/// Name of the graph input.
pub const INPUT_NAME: &str = "x";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "embedding";

/// `TensorProto.DataType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// float32.
    Float = 1,
    /// int8.
    Int8 = 3,
    /// int32.
    Int32 = 6,
    /// int64.
    Int64 = 7,
}

/// A constant tensor (an initializer).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Initializer name.
    pub name: String,
    /// Element type.
    pub data_type: DataType,
    /// Shape (empty for a scalar).
    pub dims: Vec<i64>,
    /// Little-endian element bytes.
    pub raw: Vec<u8>,
}

impl Tensor {
    /// float32 tensor.
    pub fn f32(name: &str, dims: &[i64], values: &[f32]) -> Tensor {
        Tensor {
            name: name.into(),
            data_type: DataType::Float,
            dims: dims.to_vec(),
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// int8 tensor.
    pub fn i8(name: &str, dims: &[i64], values: &[i8]) -> Tensor {
        Tensor {
            name: name.into(),
            data_type: DataType::Int8,
            dims: dims.to_vec(),
            raw: values.iter().map(|&v| v as u8).collect(),
        }
    }
    /// int32 tensor.
    pub fn i32(name: &str, dims: &[i64], values: &[i32]) -> Tensor {
        Tensor {
            name: name.into(),
            data_type: DataType::Int32,
            dims: dims.to_vec(),
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    /// int64 tensor.
    pub fn i64(name: &str, dims: &[i64], values: &[i64]) -> Tensor {
        Tensor {
            name: name.into(),
            data_type: DataType::Int64,
            dims: dims.to_vec(),
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
}

/// One operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Operator type (`Conv`, `QuantizeLinear`, ...), default domain.
    pub op_type: String,
    /// Node name.
    pub name: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attrs: Vec<(String, Attr)>,
}

/// A whole model before encoding: nodes, initializers and the fixed input
/// and output of the encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Graph name.
    pub name: String,
    /// Side of the square input.
    pub input_size: usize,
    /// Embedding length.
    pub embedding_dim: usize,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constants.
    pub initializers: Vec<Tensor>,
    /// `metadata_props` (key, value).
    pub metadata: Vec<(String, String)>,
    /// Model doc string.
    pub doc: String,
}

impl Model {
    fn new(name: &str, input_size: usize) -> Model {
        Model {
            name: name.into(),
            input_size,
            embedding_dim: 0,
            nodes: Vec::new(),
            initializers: Vec::new(),
            metadata: Vec::new(),
            doc: String::new(),
        }
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) {
        self.nodes.push(Node {
            op_type: op.into(),
            name: format!("{output}_{op}"),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
    }

    fn init(&mut self, t: Tensor) -> String {
        let name = t.name.clone();
        self.initializers.push(t);
        name
    }

    /// QuantizeLinear + DequantizeLinear of `x` at (scale, zero point);
    /// returns the dequantized value's name.
    fn qdq(&mut self, x: &str, scale: f32, zero_point: i8, tag: &str) -> String {
        let s = self.init(Tensor::f32(&format!("{tag}_scale"), &[], &[scale]));
        let z = self.init(Tensor::i8(&format!("{tag}_zero_point"), &[], &[zero_point]));
        let q = format!("{tag}_q");
        let dq = format!("{tag}_dq");
        self.node("QuantizeLinear", &[x, &s, &z], &q, vec![]);
        self.node("DequantizeLinear", &[&q, &s, &z], &dq, vec![]);
        dq
    }

    /// Per-output-channel int8 weights and int32 bias behind
    /// DequantizeLinear (axis 0); returns (weights, bias) value names.
    fn dq_weights(
        &mut self,
        tag: &str,
        dims: &[i64],
        weights: &[i8],
        bias: &[i32],
        w_scale: &[f32],
        s_in: f32,
    ) -> (String, String) {
        let out = w_scale.len();
        let w = self.init(Tensor::i8(&format!("{tag}_w"), dims, weights));
        let ws = self.init(Tensor::f32(
            &format!("{tag}_w_scale"),
            &[out as i64],
            w_scale,
        ));
        let wz = self.init(Tensor::i8(
            &format!("{tag}_w_zero_point"),
            &[out as i64],
            &vec![0; out],
        ));
        let wdq = format!("{tag}_w_dq");
        self.node(
            "DequantizeLinear",
            &[&w, &ws, &wz],
            &wdq,
            vec![("axis", Attr::Int(0))],
        );
        let b = self.init(Tensor::i32(&format!("{tag}_b"), &[out as i64], bias));
        let b_scale: Vec<f32> = w_scale
            .iter()
            .map(|&s| (s as f64 * s_in as f64) as f32)
            .collect();
        let bs = self.init(Tensor::f32(
            &format!("{tag}_b_scale"),
            &[out as i64],
            &b_scale,
        ));
        let bz = self.init(Tensor::i32(
            &format!("{tag}_b_zero_point"),
            &[out as i64],
            &vec![0; out],
        ));
        let bdq = format!("{tag}_b_dq");
        self.node(
            "DequantizeLinear",
            &[&b, &bs, &bz],
            &bdq,
            vec![("axis", Attr::Int(0))],
        );
        (wdq, bdq)
    }

    /// The activation clamp of a requantization as float ops on `y`.
    fn clamp(&mut self, y: String, rq: &Requant<'_>, tag: &str) -> String {
        let (lo, hi, zp) = (rq.activation_min, rq.activation_max, rq.output_zero_point);
        if lo == zp && hi == i8::MAX {
            let r = format!("{tag}_relu");
            self.node("Relu", &[&y], &r, vec![]);
            r
        } else if lo == i8::MIN && hi == i8::MAX {
            y
        } else {
            let s = rq.output_scale;
            let min = self.init(Tensor::f32(
                &format!("{tag}_clip_min"),
                &[],
                &[(lo as i32 - zp as i32) as f32 * s],
            ));
            let max = self.init(Tensor::f32(
                &format!("{tag}_clip_max"),
                &[],
                &[(hi as i32 - zp as i32) as f32 * s],
            ));
            let c = format!("{tag}_clip");
            self.node("Clip", &[&y, &min, &max], &c, vec![]);
            c
        }
    }

    /// Encodes the model as ONNX protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_model(self)
    }
}

/// Real value of a Q31 multiplier and shift: `m / 2^31 * 2^shift`.
pub fn real_multiplier(multiplier: i32, shift: i8) -> f64 {
    multiplier as f64 / 2f64.powi(31) * 2f64.powi(shift as i32)
}

fn weight_scales(rq: &Requant<'_>, s_in: f32) -> Vec<f32> {
    let s_out = rq.output_scale as f64;
    rq.multipliers
        .iter()
        .zip(rq.shifts.iter())
        .map(|(m, sh)| (real_multiplier(m, sh) * s_out / s_in as f64) as f32)
        .collect()
}

/// Builds the QDQ graph of an int8 model blob (checked by [`Blob::parse`]).
pub fn int8_model(blob_bytes: &[u8]) -> Result<Model> {
    let blob = Blob::parse(blob_bytes).map_err(|e| anyhow!("not a valid model blob: {e}"))?;
    let h = *blob.header();
    let size = h.input_size as usize;
    let mut m = Model::new("seaclr_int8_qdq", size);
    let mut x = m.qdq(INPUT_NAME, 1.0 / 255.0, h.input_zero_point, "input");
    let mut s_in = 1.0f32 / 255.0;
    // Activation shape (C, H, W) for the linear layer's column order.
    let (mut c, mut hh, mut ww) = (1usize, size, size);
    for (i, layer) in blob.layers().enumerate() {
        let tag = format!("l{i}");
        let rq = *layer.requant();
        let y = match layer {
            Layer::Conv3x3(conv) => {
                let (cin, cout) = (conv.in_channels as usize, conv.out_channels as usize);
                // [out][ky][kx][in] -> [out][in][ky][kx]
                let src: Vec<i8> = conv.weights.iter().collect();
                let mut w = vec![0i8; src.len()];
                for o in 0..cout {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            for ci in 0..cin {
                                w[((o * cin + ci) * 3 + ky) * 3 + kx] =
                                    src[((o * 3 + ky) * 3 + kx) * cin + ci];
                            }
                        }
                    }
                }
                let bias: Vec<i32> = conv.bias.iter().collect();
                let ws = weight_scales(&rq, s_in);
                let (wdq, bdq) =
                    m.dq_weights(&tag, &[cout as i64, cin as i64, 3, 3], &w, &bias, &ws, s_in);
                let s = conv.stride as i64;
                let y = format!("{tag}_conv");
                m.node(
                    "Conv",
                    &[&x, &wdq, &bdq],
                    &y,
                    vec![
                        ("kernel_shape", Attr::Ints(vec![3, 3])),
                        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                        ("strides", Attr::Ints(vec![s, s])),
                    ],
                );
                let stride = conv.stride as usize;
                (c, hh, ww) = (cout, (hh - 1) / stride + 1, (ww - 1) / stride + 1);
                m.clamp(y, &rq, &tag)
            }
            Layer::GlobalAvgPool(_) => {
                let y = format!("{tag}_gap");
                m.node("GlobalAveragePool", &[&x], &y, vec![]);
                (hh, ww) = (1, 1);
                y
            }
            Layer::Linear(lin) => {
                let (fin, fout) = (lin.in_features as usize, lin.out_features as usize);
                if fin != c * hh * ww {
                    bail!("layer {i}: linear input {fin} != {c}x{hh}x{ww}");
                }
                let src: Vec<i8> = lin.weights.iter().collect();
                let mut w = vec![0i8; src.len()];
                // blob columns are HWC ((y * W + x) * C + c), ONNX's Flatten is CHW.
                for o in 0..fout {
                    for ci in 0..c {
                        for p in 0..hh * ww {
                            w[o * fin + ci * hh * ww + p] = src[o * fin + p * c + ci];
                        }
                    }
                }
                let bias: Vec<i32> = lin.bias.iter().collect();
                let ws = weight_scales(&rq, s_in);
                let (wdq, bdq) =
                    m.dq_weights(&tag, &[fout as i64, fin as i64], &w, &bias, &ws, s_in);
                let flat = format!("{tag}_flatten");
                m.node("Flatten", &[&x], &flat, vec![("axis", Attr::Int(1))]);
                let y = format!("{tag}_gemm");
                m.node(
                    "Gemm",
                    &[&flat, &wdq, &bdq],
                    &y,
                    vec![("transB", Attr::Int(1))],
                );
                // Back to NCHW with H = W = 1 so later layers see 4-D tensors.
                let shape = m.init(Tensor::i64(
                    &format!("{tag}_shape"),
                    &[4],
                    &[0, fout as i64, 1, 1],
                ));
                let r = format!("{tag}_reshape");
                m.node("Reshape", &[&y, &shape], &r, vec![]);
                (c, hh, ww) = (fout, 1, 1);
                m.clamp(r, &rq, &tag)
            }
        };
        x = m.qdq(
            &y,
            rq.output_scale,
            rq.output_zero_point,
            &format!("{tag}_out"),
        );
        s_in = rq.output_scale;
    }
    if hh * ww != 1 {
        bail!("the blob's output is {c}x{hh}x{ww}, not a vector");
    }
    m.node("Flatten", &[&x], OUTPUT_NAME, vec![("axis", Attr::Int(1))]);
    m.embedding_dim = h.embedding_dim as usize;
    m.doc = "SeaCLR int8 encoder as QDQ: input x = (255 - p) / 255 of the preprocessed \
             gray image p, [N, 1, S, S]; output the dequantized int8 embedding \
             output_scale * (q - output_zero_point)."
        .into();
    m.metadata = vec![
        ("seaclr.kind".into(), "int8-qdq".into()),
        (
            "seaclr.blob_crc32".into(),
            format!(
                "{:08x}",
                seaclr_shared::blob::crc32(blob_bytes_used(blob_bytes, &h))
            ),
        ),
        ("seaclr.input_size".into(), size.to_string()),
        ("seaclr.preprocess_id".into(), h.preprocess_id.to_string()),
        (
            "seaclr.output_scale".into(),
            format!("{:e}", h.output_scale),
        ),
        (
            "seaclr.output_zero_point".into(),
            h.output_zero_point.to_string(),
        ),
        (
            "seaclr.input".into(),
            "x = (255 - p) / 255, p the preprocessed gray pixel".into(),
        ),
    ];
    Ok(m)
}

fn blob_bytes_used<'a>(bytes: &'a [u8], h: &seaclr_shared::blob::Header) -> &'a [u8] {
    &bytes[..h.total_len().min(bytes.len())]
}

/// Builds the float graph of a folded float encoder.
pub fn float_model(enc: &FloatEncoder) -> Result<Model> {
    let size = enc.input_size;
    let mut m = Model::new("seaclr_float", size);
    let mut x = INPUT_NAME.to_string();
    let (mut c, mut hh, mut ww) = (1usize, size, size);
    for (i, layer) in enc.layers.iter().enumerate() {
        let tag = format!("l{i}");
        x = match layer {
            FloatLayer::Conv3x3 {
                in_channels,
                out_channels,
                stride,
                weights,
                bias,
                relu,
            } => {
                if *in_channels != c {
                    bail!("layer {i}: {in_channels} input channels, the tensor has {c}");
                }
                let w = m.init(Tensor::f32(
                    &format!("{tag}_w"),
                    &[*out_channels as i64, c as i64, 3, 3],
                    weights,
                ));
                let b = m.init(Tensor::f32(
                    &format!("{tag}_b"),
                    &[*out_channels as i64],
                    bias,
                ));
                let y = format!("{tag}_conv");
                let s = *stride as i64;
                m.node(
                    "Conv",
                    &[&x, &w, &b],
                    &y,
                    vec![
                        ("kernel_shape", Attr::Ints(vec![3, 3])),
                        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                        ("strides", Attr::Ints(vec![s, s])),
                    ],
                );
                (c, hh, ww) = (*out_channels, (hh - 1) / stride + 1, (ww - 1) / stride + 1);
                if *relu {
                    let r = format!("{tag}_relu");
                    m.node("Relu", &[&y], &r, vec![]);
                    r
                } else {
                    y
                }
            }
            FloatLayer::GlobalAvgPool => {
                let y = format!("{tag}_gap");
                m.node("GlobalAveragePool", &[&x], &y, vec![]);
                (hh, ww) = (1, 1);
                y
            }
            FloatLayer::Linear {
                in_features,
                out_features,
                weights,
                bias,
                relu,
            } => {
                if *in_features != c * hh * ww {
                    bail!("layer {i}: linear input {in_features} != {c}x{hh}x{ww}");
                }
                // The float encoder's Linear flattens CHW, as ONNX does.
                let w = m.init(Tensor::f32(
                    &format!("{tag}_w"),
                    &[*out_features as i64, *in_features as i64],
                    weights,
                ));
                let b = m.init(Tensor::f32(
                    &format!("{tag}_b"),
                    &[*out_features as i64],
                    bias,
                ));
                let flat = format!("{tag}_flatten");
                m.node("Flatten", &[&x], &flat, vec![("axis", Attr::Int(1))]);
                let y = format!("{tag}_gemm");
                m.node("Gemm", &[&flat, &w, &b], &y, vec![("transB", Attr::Int(1))]);
                let shape = m.init(Tensor::i64(
                    &format!("{tag}_shape"),
                    &[4],
                    &[0, *out_features as i64, 1, 1],
                ));
                let r = format!("{tag}_reshape");
                m.node("Reshape", &[&y, &shape], &r, vec![]);
                (c, hh, ww) = (*out_features, 1, 1);
                if *relu {
                    let rr = format!("{tag}_relu");
                    m.node("Relu", &[&r], &rr, vec![]);
                    rr
                } else {
                    r
                }
            }
        };
    }
    if hh * ww != 1 {
        bail!("the encoder's output is {c}x{hh}x{ww}, not a vector");
    }
    m.node("Flatten", &[&x], OUTPUT_NAME, vec![("axis", Attr::Int(1))]);
    m.embedding_dim = c;
    m.doc = "SeaCLR float encoder (BatchNorm folded): input x = (255 - p) / 255 of the \
             preprocessed gray image p, [N, 1, S, S]; output the embedding."
        .into();
    m.metadata = vec![
        ("seaclr.kind".into(), "float".into()),
        ("seaclr.input_size".into(), size.to_string()),
        (
            "seaclr.input".into(),
            "x = (255 - p) / 255, p the preprocessed gray pixel".into(),
        ),
    ];
    Ok(m)
}

/// Writes `model` to `path`.
pub fn write_model(model: &Model, path: &std::path::Path) -> Result<()> {
    std::fs::write(path, model.to_bytes()).with_context(|| format!("writing {}", path.display()))
}

// ----- protobuf encoding -----

/// A protobuf message being written (wire format, fields in call order).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn msg(&mut self, field: u32, m: Pb) {
        self.bytes(field, &m.0);
    }
}

fn encode_tensor(t: &Tensor) -> Pb {
    let mut p = Pb::default();
    for &d in &t.dims {
        p.int(1, d); // dims
    }
    p.int(2, t.data_type as i64); // data_type
    p.string(8, &t.name); // name
    p.bytes(9, &t.raw); // raw_data
    p
}

fn encode_attr(name: &str, a: &Attr) -> Pb {
    let mut p = Pb::default();
    p.string(1, name);
    match a {
        Attr::Int(v) => {
            p.int(3, *v); // i
            p.int(20, 2); // type INT
        }
        Attr::Ints(vs) => {
            for &v in vs {
                p.int(8, v); // ints
            }
            p.int(20, 7); // type INTS
        }
    }
    p
}

fn encode_node(n: &Node) -> Pb {
    let mut p = Pb::default();
    for i in &n.inputs {
        p.string(1, i);
    }
    for o in &n.outputs {
        p.string(2, o);
    }
    p.string(3, &n.name);
    p.string(4, &n.op_type);
    for (k, v) in &n.attrs {
        p.msg(5, encode_attr(k, v));
    }
    p
}

/// A float tensor value: `dims` with `None` for the symbolic batch `N`.
fn encode_value_info(name: &str, dims: &[Option<i64>]) -> Pb {
    let mut shape = Pb::default();
    for d in dims {
        let mut dim = Pb::default();
        match d {
            Some(v) => dim.int(1, *v),  // dim_value
            None => dim.string(2, "N"), // dim_param
        }
        shape.msg(1, dim);
    }
    let mut tensor = Pb::default();
    tensor.int(1, DataType::Float as i64); // elem_type
    tensor.msg(2, shape);
    let mut ty = Pb::default();
    ty.msg(1, tensor); // tensor_type
    let mut p = Pb::default();
    p.string(1, name);
    p.msg(2, ty);
    p
}

fn encode_model(m: &Model) -> Vec<u8> {
    let s = m.input_size as i64;
    let mut g = Pb::default();
    for n in &m.nodes {
        g.msg(1, encode_node(n));
    }
    g.string(2, &m.name);
    for t in &m.initializers {
        g.msg(5, encode_tensor(t));
    }
    g.msg(
        11,
        encode_value_info(INPUT_NAME, &[None, Some(1), Some(s), Some(s)]),
    );
    g.msg(
        12,
        encode_value_info(OUTPUT_NAME, &[None, Some(m.embedding_dim as i64)]),
    );
    let mut p = Pb::default();
    p.int(1, IR_VERSION);
    p.string(2, "seaclr");
    p.string(3, env!("CARGO_PKG_VERSION"));
    p.string(6, &m.doc);
    p.msg(7, g);
    let mut opset = Pb::default();
    opset.string(1, "");
    opset.int(2, OPSET);
    p.msg(8, opset);
    for (k, v) in &m.metadata {
        let mut e = Pb::default();
        e.string(1, k);
        e.string(2, v);
        p.msg(14, e);
    }
    p.0
}

#[cfg(test)]
pub(crate) mod pb_tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut p = Pb::default();
        p.int(1, 300);
        assert_eq!(p.0, [0x08, 0xac, 0x02]);
        let mut p = Pb::default();
        p.int(2, -1);
        assert_eq!(p.0.len(), 11, "negative int64 is a 10-byte varint");
        let mut p = Pb::default();
        p.string(4, "Conv");
        assert_eq!(p.0, [0x22, 4, b'C', b'o', b'n', b'v']);
    }
}
