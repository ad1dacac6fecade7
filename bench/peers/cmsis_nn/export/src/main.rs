//! Exports a SeaCLR model blob for the CMSIS-NN peer harness as one C header:
//! every layer's shapes, int8 weights, int32 biases, per-channel Q31
//! multipliers and shifts (widened to `int32_t`, as CMSIS-NN takes them),
//! zero points and clamps; one preprocessed image as the int8 input tensor;
//! and every layer's expected int8 output.
//!
//! The expected outputs are computed twice on the host and must agree before
//! anything is written: with the engine's own per-layer kernels
//! (`seaclr_edge::kernels::{conv3x3, global_avg_pool, linear}`, what
//! `Engine::encode` runs layer by layer) and with the plain i32 reference
//! (`seaclr_edge::kernels::reference::run_layer`); the last layer's output
//! is also checked against `Engine::encode`.
//!
//! Layouts need no conversion: the blob's tensors are HWC (CMSIS-NN NHWC
//! with N = 1), conv weights `[out][ky][kx][in]` (CMSIS-NN OHWI) and linear
//! weights `[out][in]` (CMSIS-NN's fully connected rows, one per output).
//!
//! Usage: `seaclr-cmsis-export --model BLOB --image FILE_OR_DIR --out HEADER`.
//! A directory picks its first class folder and that folder's first image
//! (byte order of the names), so the choice is stable.
//!
//! `seaclr-cmsis-export --synthetic-blob OUT` instead writes a small blob
//! with seeded random weights that covers what the committed model does
//! not: linear layers (CMSIS-NN's fully connected path), odd channel
//! counts, zero points other than -128, ReLU clamps, a left shift, and a
//! last layer after the pool. Its multipliers are set from the layer's real
//! accumulator range on a fixed image, so outputs spread over int8.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use seaclr_edge::engine::Engine;
use seaclr_edge::kernels::{self, reference};
use seaclr_shared::blob::write::{ModelInfo, OwnedLayer, OwnedRequant, write_owned};
use seaclr_shared::blob::{Blob, Layer, Requant, Shape};
use seaclr_shared::preprocess::preprocess_gray;

struct Args {
    model: PathBuf,
    image: PathBuf,
    out: PathBuf,
}

enum Command {
    Export(Args),
    Synthetic(PathBuf),
}

fn parse_args() -> Result<Command, String> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--synthetic-blob") {
        if argv.len() != 2 {
            return Err("usage: seaclr-cmsis-export --synthetic-blob OUT".into());
        }
        return Ok(Command::Synthetic(PathBuf::from(argv.remove(1))));
    }
    let mut model = None;
    let mut image = None;
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--image" => image = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                return Err(
                    "usage: seaclr-cmsis-export --model BLOB --image FILE_OR_DIR --out HEADER"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Command::Export(Args {
        model: model.ok_or("--model is required")?,
        image: image.ok_or("--image is required")?,
        out: out.ok_or("--out is required")?,
    }))
}

/// xorshift64: seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u64) as i32
    }
}

/// One layer of the synthetic model before its multipliers are known.
struct Draft {
    kind: DraftKind,
    out_zp: i8,
    relu: bool,
}

enum DraftKind {
    Conv { cin: u16, cout: u16, stride: u8 },
    Pool,
    Linear { fin: u16, fout: u16 },
}

/// A seeded random blob: 20 x 20 input, conv 1->7 s2 (ReLU), conv 7->12 s1,
/// conv 12->20 s2 (ReLU), conv 20->24 s1, pool, linear 24->19, linear 19->10.
/// For each layer the reference runs it with a unit requantization and wide
/// clamps on a fixed ramp image, and the multiplier and shift are chosen to
/// map the largest accumulator to about 100 steps.
fn synthetic_blob() -> Result<Vec<u8>, String> {
    let size = 20usize;
    let mut rng = Rng(0x5eac_1c35_0b1e_55ed);
    let drafts = [
        Draft { kind: DraftKind::Conv { cin: 1, cout: 7, stride: 2 }, out_zp: -20, relu: true },
        Draft { kind: DraftKind::Conv { cin: 7, cout: 12, stride: 1 }, out_zp: 3, relu: false },
        Draft { kind: DraftKind::Conv { cin: 12, cout: 20, stride: 2 }, out_zp: -128, relu: true },
        Draft { kind: DraftKind::Conv { cin: 20, cout: 24, stride: 1 }, out_zp: 11, relu: false },
        Draft { kind: DraftKind::Pool, out_zp: -5, relu: false },
        Draft { kind: DraftKind::Linear { fin: 24, fout: 19 }, out_zp: 7, relu: true },
        Draft { kind: DraftKind::Linear { fin: 19, fout: 10 }, out_zp: 0, relu: false },
    ];
    let mut x = reference::RefTensor {
        height: size,
        width: size,
        channels: 1,
        values: (0..size * size).map(|i| ((i * 37) % 256) as i32 - 128).collect(),
    };
    let mut in_zp: i8 = -128;
    let mut layers = Vec::new();
    for (index, d) in drafts.iter().enumerate() {
        let (weights, bias, channels): (Vec<i32>, Vec<i32>, usize) = match d.kind {
            DraftKind::Conv { cin, cout, .. } => (
                (0..cout as usize * 9 * cin as usize).map(|_| rng.range(-127, 127)).collect(),
                (0..cout).map(|_| rng.range(-3000, 3000)).collect(),
                cout as usize,
            ),
            DraftKind::Pool => (Vec::new(), Vec::new(), 1),
            DraftKind::Linear { fin, fout } => (
                (0..fout as usize * fin as usize).map(|_| rng.range(-127, 127)).collect(),
                (0..fout).map(|_| rng.range(-3000, 3000)).collect(),
                fout as usize,
            ),
        };
        // Accumulators: multiplier 2^30 with shift 1 is exactly x1.
        let probe = reference::RefQuant {
            input_zero_point: in_zp as i32,
            output_zero_point: 0,
            activation_min: i32::MIN,
            activation_max: i32::MAX,
            multipliers: vec![1 << 30; channels],
            shifts: vec![1; channels],
        };
        let ref_layer = |quant: reference::RefQuant| match d.kind {
            DraftKind::Conv { cin, cout, stride } => reference::RefLayer::Conv3x3 {
                in_channels: cin as usize,
                out_channels: cout as usize,
                stride: stride as usize,
                weights: weights.clone(),
                bias: bias.clone(),
                quant,
            },
            DraftKind::Pool => reference::RefLayer::GlobalAvgPool { quant },
            DraftKind::Linear { fout, .. } => reference::RefLayer::Linear {
                out_features: fout as usize,
                weights: weights.clone(),
                bias: bias.clone(),
                quant,
            },
        };
        let acc = reference::run_layer(&ref_layer(probe), &x);
        let mut multipliers = Vec::new();
        let mut shifts = Vec::new();
        for c in 0..channels {
            let max = acc
                .values
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|v| v.unsigned_abs() as f64)
                .fold(1.0, f64::max);
            // Pool: one multiplier for all channels, from the largest sum.
            let max = if matches!(d.kind, DraftKind::Pool) {
                acc.values.iter().map(|v| v.unsigned_abs() as f64).fold(1.0, f64::max)
            } else {
                max
            };
            let mut scale = 100.0 / max * (0.8 + 0.4 * (rng.next() % 1000) as f64 / 1000.0);
            if index == drafts.len() - 1 && c == 0 {
                // A left shift (scale in [1, 2)): CMSIS-NN's LEFT_SHIFT path.
                scale = 1.5;
            }
            let (m, e) = frexp(scale);
            multipliers.push(((m * (1u64 << 31) as f64).round() as i64).min(i32::MAX as i64) as i32);
            shifts.push(e as i8);
        }
        let requant = OwnedRequant {
            input_zero_point: in_zp,
            output_zero_point: d.out_zp,
            activation_min: if d.relu { d.out_zp } else { -128 },
            activation_max: 127,
            multipliers: multipliers.clone(),
            shifts: shifts.clone(),
            output_scale: 0.05,
        };
        let quant = reference::RefQuant {
            input_zero_point: in_zp as i32,
            output_zero_point: d.out_zp as i32,
            activation_min: requant.activation_min as i32,
            activation_max: 127,
            multipliers,
            shifts: shifts.iter().map(|&s| s as i32).collect(),
        };
        let w8: Vec<i8> = weights.iter().map(|&w| w as i8).collect();
        layers.push(match d.kind {
            DraftKind::Conv { cin, cout, stride } => {
                OwnedLayer::conv3x3(cin, cout, stride, &w8, &bias, requant)
            }
            DraftKind::Pool => OwnedLayer::global_avg_pool(x.channels as u16, requant),
            DraftKind::Linear { fin, fout } => OwnedLayer::linear(fin, fout, &w8, &bias, requant),
        });
        x = reference::run_layer(&ref_layer(quant), &x);
        in_zp = d.out_zp;
        eprintln!("synthetic layer {index}: {} values out", x.values.len());
    }
    let info = ModelInfo {
        input_size: size as u16,
        preprocess_id: seaclr_shared::preprocess::PREPROCESS_ID,
    };
    let blob = write_owned(info, &layers).map_err(|e| format!("synthetic blob: {e}"))?;
    Blob::parse(&blob).map_err(|e| format!("synthetic blob does not parse: {e}"))?;
    Ok(blob)
}

/// `x = m * 2^e` with `m` in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let mut e = 0;
    let mut m = x;
    while m >= 1.0 {
        m /= 2.0;
        e += 1;
    }
    while m < 0.5 {
        m *= 2.0;
        e -= 1;
    }
    (m, e)
}

/// First entry of a directory (sorted by name) that satisfies `keep`.
fn first_entry(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<PathBuf, String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no usable entry", dir.display()))
}

/// The image file: `path` itself, or the first image of the first class folder.
fn pick_image(path: &Path) -> Result<PathBuf, String> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let is_image = |p: &Path| {
        p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    };
    if let Ok(file) = first_entry(path, is_image) {
        return Ok(file);
    }
    let class = first_entry(path, |p| p.is_dir())?;
    first_entry(&class, is_image)
}

/// The blob's requantization in the reference's form.
fn ref_quant(rq: &Requant<'_>) -> reference::RefQuant {
    reference::RefQuant {
        input_zero_point: rq.input_zero_point as i32,
        output_zero_point: rq.output_zero_point as i32,
        activation_min: rq.activation_min as i32,
        activation_max: rq.activation_max as i32,
        multipliers: rq.multipliers.iter().collect(),
        shifts: rq.shifts.iter().map(i32::from).collect(),
    }
}

fn ref_layer(layer: &Layer<'_>) -> reference::RefLayer {
    let weights = |w: &[u8]| w.iter().map(|&v| v as i8 as i32).collect();
    match layer {
        Layer::Conv3x3(c) => reference::RefLayer::Conv3x3 {
            in_channels: c.in_channels as usize,
            out_channels: c.out_channels as usize,
            stride: c.stride as usize,
            weights: weights(c.weights.0),
            bias: c.bias.iter().collect(),
            quant: ref_quant(&c.requant),
        },
        Layer::GlobalAvgPool(p) => reference::RefLayer::GlobalAvgPool {
            quant: ref_quant(&p.requant),
        },
        Layer::Linear(l) => reference::RefLayer::Linear {
            out_features: l.out_features as usize,
            weights: weights(l.weights.0),
            bias: l.bias.iter().collect(),
            quant: ref_quant(&l.requant),
        },
    }
}

/// `static const TYPE NAME[N] = { ... };` with 24 values a line.
fn c_array<T: std::fmt::Display>(out: &mut String, ty: &str, name: &str, values: &[T]) {
    let _ = writeln!(
        out,
        "static const {ty} {name}[{}] __attribute__((aligned(4))) = {{",
        values.len().max(1)
    );
    for chunk in values.chunks(24) {
        let line: Vec<String> = chunk.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(out, "    {},", line.join(", "));
    }
    if values.is_empty() {
        let _ = writeln!(out, "    0,");
    }
    let _ = writeln!(out, "}};");
}

fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn run() -> Result<(), String> {
    let args = match parse_args()? {
        Command::Export(args) => args,
        Command::Synthetic(out) => {
            let blob = synthetic_blob()?;
            std::fs::write(&out, &blob).map_err(|e| format!("writing {}: {e}", out.display()))?;
            eprintln!("wrote {} ({} bytes)", out.display(), blob.len());
            return Ok(());
        }
    };
    let bytes =
        std::fs::read(&args.model).map_err(|e| format!("reading {}: {e}", args.model.display()))?;
    let engine = Engine::new(&bytes).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let blob = engine.blob();
    let header = blob.header();
    let size = engine.input_size();

    let image_path = pick_image(&args.image)?;
    let gray = image::open(&image_path)
        .map_err(|e| format!("decoding {}: {e}", image_path.display()))?
        .to_luma8();
    let mut pixels = vec![0u8; size * size];
    preprocess_gray(
        gray.as_raw(),
        gray.width() as usize,
        gray.height() as usize,
        size,
        &mut pixels,
    )
    .map_err(|e| format!("preprocessing {}: {e}", image_path.display()))?;

    // Input encoding of the blob: q = 127 - p (zero point -128).
    let input: Vec<i8> = pixels.iter().map(|&p| (127 - p as i32) as i8).collect();

    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* Generated by bench/peers/cmsis_nn/export (seaclr-cmsis-export); do not edit. */"
    );
    let _ = writeln!(h, "#ifndef SEACLR_MODEL_DATA_H\n#define SEACLR_MODEL_DATA_H");
    let _ = writeln!(h, "#include \"model.h\"\n");
    let model_name = args.model.display().to_string();
    let image_name = image_path.display().to_string();
    let _ = writeln!(h, "#define SEACLR_MODEL_NAME {}", c_string(&model_name));
    let _ = writeln!(h, "#define SEACLR_IMAGE_NAME {}", c_string(&image_name));
    let _ = writeln!(h, "#define SEACLR_PAYLOAD_CRC32 0x{:08x}u", header.payload_crc32);
    let _ = writeln!(h, "#define SEACLR_INPUT_SIZE {size}");
    let _ = writeln!(h, "#define SEACLR_BLOB_MACS {}u", header.macs);
    c_array(&mut h, "int8_t", "seaclr_input", &input);

    let mut shape = Shape {
        height: size,
        width: size,
        channels: 1,
    };
    let mut x: Vec<i8> = input.clone();
    let mut ref_x = reference::RefTensor {
        height: size,
        width: size,
        channels: 1,
        values: input.iter().map(|&v| v as i32).collect(),
    };
    let mut patch = vec![0i16; blob.plan().scratch_bytes as usize / 2 + 16];
    let mut descs = Vec::new();
    let mut max_act = shape.len();
    let mut left_shifts = 0usize;
    for (i, layer) in blob.layers().enumerate() {
        let rq = layer.requant();
        left_shifts += rq.shifts.iter().filter(|&s| s > 0).count();
        // The engine's own per-layer kernel.
        let mut y = vec![0i8; 1 << 20];
        let out_shape = match &layer {
            Layer::Conv3x3(c) => kernels::conv3x3(c, &x, shape, &mut patch, &mut y),
            Layer::GlobalAvgPool(p) => kernels::global_avg_pool(p, &x, shape, &mut y),
            Layer::Linear(l) => kernels::linear(l, &x, &mut y),
        };
        y.truncate(out_shape.len());
        // The i32 reference.
        let ref_y = reference::run_layer(&ref_layer(&layer), &ref_x);
        let ref_bytes: Vec<i8> = ref_y.values.iter().map(|&v| v as i8).collect();
        if ref_bytes != y
            || (ref_y.height, ref_y.width, ref_y.channels)
                != (out_shape.height, out_shape.width, out_shape.channels)
        {
            return Err(format!(
                "layer {i}: the engine's kernel and the reference disagree on the host"
            ));
        }
        let (kind, stride, macs, weights, bias) = match &layer {
            Layer::Conv3x3(c) => (
                "SEACLR_CONV3X3",
                c.stride as u32,
                (out_shape.len() * 9 * shape.channels) as u64,
                Some(c.weights.iter().collect::<Vec<i8>>()),
                Some(c.bias.iter().collect::<Vec<i32>>()),
            ),
            Layer::GlobalAvgPool(_) => ("SEACLR_AVGPOOL", 1, 0, None, None),
            Layer::Linear(l) => (
                "SEACLR_LINEAR",
                1,
                l.in_features as u64 * l.out_features as u64,
                Some(l.weights.iter().collect::<Vec<i8>>()),
                Some(l.bias.iter().collect::<Vec<i32>>()),
            ),
        };
        let _ = writeln!(h, "\n/* layer {i}: {kind} */");
        if let Some(w) = &weights {
            c_array(&mut h, "int8_t", &format!("l{i}_weights"), w);
        }
        if let Some(b) = &bias {
            c_array(&mut h, "int32_t", &format!("l{i}_bias"), b);
        }
        let mults: Vec<i32> = rq.multipliers.iter().collect();
        let shifts: Vec<i32> = rq.shifts.iter().map(i32::from).collect();
        c_array(&mut h, "int32_t", &format!("l{i}_multipliers"), &mults);
        c_array(&mut h, "int32_t", &format!("l{i}_shifts"), &shifts);
        c_array(&mut h, "int8_t", &format!("l{i}_expected"), &y);
        let ptr = |name: &str, present: bool| {
            if present {
                format!("l{i}_{name}")
            } else {
                "0".to_string()
            }
        };
        descs.push(format!(
            "    {{ {kind}, {}, {}, {}, {}, {}, {}, {stride}, {}, {}, {}, {}, {macs}u, {}, {}, l{i}_multipliers, l{i}_shifts, l{i}_expected }},",
            shape.height,
            shape.width,
            shape.channels,
            out_shape.height,
            out_shape.width,
            out_shape.channels,
            rq.input_zero_point,
            rq.output_zero_point,
            rq.activation_min,
            rq.activation_max,
            ptr("weights", weights.is_some()),
            ptr("bias", bias.is_some()),
        ));
        eprintln!(
            "layer {i}: {kind} {}x{}x{} -> {}x{}x{} stride {stride}, {macs} MACs, zp {} -> {}, clamp [{}, {}], shifts {}..{}",
            shape.height,
            shape.width,
            shape.channels,
            out_shape.height,
            out_shape.width,
            out_shape.channels,
            rq.input_zero_point,
            rq.output_zero_point,
            rq.activation_min,
            rq.activation_max,
            shifts.iter().min().unwrap_or(&0),
            shifts.iter().max().unwrap_or(&0),
        );
        max_act = max_act.max(out_shape.len());
        x = y;
        ref_x = ref_y;
        shape = out_shape;
    }

    // The whole engine must end where the layer-by-layer run ended.
    let mut arena = vec![0u8; engine.arena_bytes() + 16];
    let mut embedding = vec![0i8; engine.embedding_dim()];
    engine
        .encode(&pixels, &mut arena, &mut embedding)
        .map_err(|e| format!("encode: {e}"))?;
    if embedding != x {
        return Err("Engine::encode differs from the layer-by-layer run".into());
    }

    let _ = writeln!(h, "\n#define SEACLR_LAYER_COUNT {}", descs.len());
    let _ = writeln!(h, "#define SEACLR_MAX_ACTIVATION {max_act}");
    let _ = writeln!(
        h,
        "/* Requantization shifts > 0 (left shifts) in the blob: {left_shifts}. */"
    );
    let _ = writeln!(h, "static const seaclr_layer seaclr_layers[SEACLR_LAYER_COUNT] = {{");
    for d in &descs {
        let _ = writeln!(h, "{d}");
    }
    let _ = writeln!(h, "}};\n\n#endif");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(&args.out, h).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "{}: {} layers, {} MACs, image {}, {} left shifts; expected outputs agree (engine kernels, i32 reference, Engine::encode); wrote {}",
        args.model.display(),
        descs.len(),
        header.macs,
        image_path.display(),
        left_shifts,
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seaclr-cmsis-export: {e}");
            ExitCode::FAILURE
        }
    }
}
