//! The application on the real engine (the committed model), the real kNN
//! head and label store, over the edge crate's power-cuttable mock flash.

use crate::buoy::{BootError, Buoy, Config, FrameInfo, ModelProblem, Outcome};
use crate::flash::{self, FlashError, ModelSlotError};
use crate::ram::DeviceRam;
use embedded_graphics::mock_display::MockDisplay;
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use seaclr_edge::store::mock_flash::MockFlash;
use seaclr_shared::partition::{CopyError, ERASE_SIZE, Layout, TableCopy};
use seaclr_shared::telemetry::Telemetry;
use std::string::String;
use std::vec::Vec;
use std::{boxed::Box, vec};

const MODEL: &[u8] = include_bytes!("../../models/seaclr-s.seaclr");
const LAYOUT: Layout = Layout {
    model_capacity: 64 * ERASE_SIZE as u32,
    store_capacity: seaclr_shared::partition::DEFAULT_STORE_CAPACITY,
};
type Chip<'a> = MockFlash<'a, 4, ERASE_SIZE>;

/// A display that accepts anything (the screen is tested in `screen`).
struct NullDisplay;
impl OriginDimensions for NullDisplay {
    fn size(&self) -> Size {
        Size::new(320, 240)
    }
}
impl DrawTarget for NullDisplay {
    type Color = Rgb565;
    type Error = core::convert::Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
        &mut self,
        _: I,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A fresh chip image, with the committed model when `model` is true.
fn chip_image(model: bool) -> Vec<u8> {
    let mut memory = vec![0xFF; LAYOUT.total() as usize];
    let mut chip = Chip::new(&mut memory);
    flash::format(&mut chip, LAYOUT).unwrap();
    if model {
        flash::install_model(&mut chip, MODEL).unwrap();
    }
    memory
}

/// Boots over `memory` and runs `f` on the buoy (a "power cycle" is one call).
fn with_buoy<R>(
    memory: &mut [u8],
    config: Config,
    f: impl FnOnce(&mut Buoy<'_, Chip<'_>>) -> R,
) -> R {
    let mut ram = Box::new(DeviceRam::new());
    let mut model = vec![0u8; 64 * ERASE_SIZE];
    let mut buoy = Buoy::boot(config, Chip::new(memory), &mut model, &mut ram).unwrap();
    f(&mut buoy)
}

/// A dark shape on white: a filled disk (kind 0) or a thin cross (kind 1).
fn shape(kind: usize, n: usize) -> (usize, usize, Vec<u8>) {
    let (w, h) = (48usize, 40usize);
    let mut gray = vec![255u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i32 - 24, y as i32 - 20);
            let on = if kind == 0 {
                dx * dx + dy * dy < 100
            } else {
                dx.abs() < 2 || dy.abs() < 2
            };
            if on {
                gray[y * w + x] = (10 + n % 5) as u8;
            }
        }
    }
    (w, h, gray)
}

fn show<F: embedded_storage::nor_flash::NorFlash>(
    buoy: &mut Buoy<'_, F>,
    kind: usize,
    n: usize,
    now_ms: u64,
) -> crate::buoy::FrameResult {
    let (w, h, gray) = shape(kind, n);
    buoy.roi_buffer()[..w * h].copy_from_slice(&gray);
    let id = std::format!("cam/k{kind}-{n}.png");
    let info = FrameInfo {
        width: w,
        height: h,
        id: &id,
    };
    buoy.process(info, now_ms, &mut NullDisplay).0
}

fn reply<F: embedded_storage::nor_flash::NorFlash>(buoy: &mut Buoy<'_, F>, line: &str) -> String {
    let mut out = String::new();
    buoy.handle_line(line, &mut out).unwrap();
    out
}

fn store_region(memory: &[u8]) -> &[u8] {
    &memory[LAYOUT.store_offset() as usize..LAYOUT.total() as usize]
}

#[test]
fn missing_or_corrupt_model_refuses_to_classify_and_never_touches_the_store() {
    let mut corrupt = chip_image(true);
    corrupt[LAYOUT.model_offset() as usize + 1000] ^= 0x10;
    for (memory, expect) in [
        (chip_image(false), "no model installed"),
        (corrupt, "corrupt"),
    ] {
        let mut memory = memory;
        with_buoy(&mut memory, Config::default(), |b| {
            let why = std::format!("{}", b.model_problem().unwrap());
            assert!(
                why.contains("refusing to classify") && why.contains(expect),
                "{why}"
            );
            let r = show(b, 0, 0, 0);
            assert_eq!(r.outcome, Outcome::ModelOff);
            let answer = reply(b, "addclass a");
            assert!(
                answer.starts_with("error:") && answer.contains("untouched"),
                "{answer}"
            );
            assert!(reply(b, "status").contains("ok model OFF"));
        });
        assert!(store_region(&memory).iter().all(|&x| x == 0xFF));
    }
}

#[test]
fn a_bad_model_never_replaces_the_installed_one() {
    let mut memory = chip_image(true);
    let before = memory.clone();
    let mut chip = Chip::new(&mut memory);
    for bad in [&MODEL[..0], &MODEL[..100], &MODEL[..MODEL.len() - 1]] {
        let e = flash::install_model(&mut chip, bad).unwrap_err();
        assert!(matches!(e, FlashError::ModelRejected(_)), "{e:?}");
    }
    let mut flipped = MODEL.to_vec();
    flipped[5000] ^= 1;
    assert!(matches!(
        flash::install_model(&mut chip, &flipped),
        Err(FlashError::ModelRejected(_))
    ));
    assert!(memory == before, "a refused model changed the flash");
    with_buoy(&mut memory, Config::default(), |b| {
        assert!(b.model_problem().is_none())
    });
}

#[test]
fn a_model_this_firmware_cannot_hold_is_refused_by_name() {
    let problem = ModelProblem::Slot(ModelSlotError::TooLarge {
        len: 300_000,
        buffer: 262_144,
    });
    assert!(std::format!("{problem}").contains("does not fit"));
}

#[test]
fn labels_classify_survive_reboot_and_bad_commands_change_nothing() {
    let mut memory = chip_image(true);
    with_buoy(&mut memory, Config::default(), |b| {
        let r = show(b, 0, 0, 0);
        assert!(r.classification().unwrap().unknown, "no labels yet: {r}");
        show(b, 1, 0, 100);
        for line in ["addclass disk", "addclass cross"] {
            assert!(reply(b, line).starts_with("ok"), "{line}");
        }
        assert!(reply(b, "label 1 disk").starts_with("ok"));
        assert!(reply(b, "label k1-0.png cross").starts_with("ok"));
        let before = (
            b.labelled_examples(),
            b.threshold(),
            b.class_names().count(),
        );
        for bad in [
            "label 99 disk",
            "label 1 nosuch",
            "addclass disk",
            "threshold 7",
            "forget class nosuch",
            "forget 55",
            "jump",
        ] {
            let answer = reply(b, bad);
            assert!(
                answer.starts_with("error:") && answer.lines().count() == 1,
                "{bad}: {answer}"
            );
        }
        assert_eq!(
            before,
            (
                b.labelled_examples(),
                b.threshold(),
                b.class_names().count()
            )
        );
        // The labelled frames, seen again, are their classes.
        assert_eq!(show(b, 0, 0, 200).class_name.as_deref(), Some("disk"));
        assert_eq!(show(b, 1, 0, 300).class_name.as_deref(), Some("cross"));
        assert!(reply(b, "threshold 0.8").starts_with("ok threshold 0.800"));
    });
    // Reboot: everything acknowledged is back.
    with_buoy(&mut memory, Config::default(), |b| {
        assert_eq!(b.labelled_examples(), 2);
        assert_eq!(
            b.class_names().collect::<Vec<_>>(),
            [Some("disk"), Some("cross")]
        );
        assert!(
            (b.threshold() - 0.8).abs() < 1.0 / 32768.0,
            "{}",
            b.threshold()
        );
        assert!(reply(b, "forget class cross").starts_with("ok"));
        assert_eq!(b.labelled_examples(), 1);
    });
}

#[test]
fn a_label_write_cut_by_power_loss_is_neither_acknowledged_nor_lost_after() {
    // Cut the power at every point of one label write in turn: the reply is
    // an error, and after the reboot the store holds exactly what was
    // acknowledged before.
    let mut base = chip_image(true);
    with_buoy(&mut base, Config::default(), |b| {
        show(b, 0, 0, 0);
        assert!(reply(b, "addclass disk").starts_with("ok"));
        assert!(reply(b, "label 1 disk").starts_with("ok"));
    });
    // Boot, mount and a frame write nothing, so a budget of `units` cuts
    // the power inside the label write itself (or not at all when larger).
    let mut cut_seen = false;
    for units in (0..400).step_by(3) {
        let mut memory = base.clone();
        let acknowledged = {
            let mut ram = Box::new(DeviceRam::new());
            let mut model = vec![0u8; 64 * ERASE_SIZE];
            let mut chip = Chip::new(&mut memory);
            chip.cut_power_after(units, units as u64);
            let mut b = Buoy::boot(Config::default(), chip, &mut model, &mut ram).unwrap();
            show(&mut b, 0, 1, 0);
            let answer = reply(&mut b, "label 1 disk");
            assert!(
                answer.starts_with("ok") || answer.starts_with("error:"),
                "{answer}"
            );
            answer.starts_with("ok")
        };
        cut_seen |= !acknowledged;
        with_buoy(&mut memory, Config::default(), |b| {
            assert_eq!(
                b.labelled_examples(),
                1 + usize::from(acknowledged),
                "cut after {units} units"
            );
            assert_eq!(b.class_names().collect::<Vec<_>>(), [Some("disk")]);
        });
    }
    assert!(cut_seen, "no budget cut the write");
}

#[test]
fn one_damaged_table_copy_never_locks_the_store_out() {
    let mut base = chip_image(true);
    with_buoy(&mut base, Config::default(), |b| {
        show(b, 0, 0, 0);
        assert!(reply(b, "addclass disk").starts_with("ok"));
        assert!(reply(b, "label 1 disk").starts_with("ok"));
    });
    let sector = |copy: TableCopy| copy.offset() as usize..copy.offset() as usize + ERASE_SIZE;
    type Damage = (&'static str, fn(&mut [u8]));
    let damages: [Damage; 2] = [
        ("erased", |s: &mut [u8]| s.fill(0xFF)),
        ("bit flip", |s: &mut [u8]| s[20] ^= 0x04),
    ];
    for copy in [TableCopy::A, TableCopy::B] {
        for (what, damage) in damages {
            let mut memory = base.clone();
            damage(&mut memory[sector(copy)]);
            with_buoy(&mut memory, Config::default(), |b| {
                assert!(b.model_problem().is_none(), "{what} {copy}");
                assert_eq!(b.labelled_examples(), 1, "{what} {copy}");
                let expected = if what == "erased" {
                    CopyError::Erased
                } else {
                    CopyError::CrcMismatch
                };
                assert_eq!(b.table_repaired(), Some(expected), "{what} {copy}");
            });
            // Repaired: both copies are valid again.
            let mut chip = Chip::new(&mut memory);
            assert_eq!(
                flash::read_table(&mut chip).unwrap().damaged,
                None,
                "{what} {copy}"
            );
        }
    }
    // Both copies gone: a clear refusal naming both.
    let mut memory = base.clone();
    memory[sector(TableCopy::A)].fill(0xFF);
    memory[sector(TableCopy::B)][9] ^= 1;
    let mut ram = Box::new(DeviceRam::new());
    let mut model = vec![0u8; 64 * ERASE_SIZE];
    let Err(e) = Buoy::boot(
        Config::default(),
        Chip::new(&mut memory),
        &mut model,
        &mut ram,
    ) else {
        panic!("booted without a table");
    };
    assert!(matches!(e, BootError::Table(FlashError::NoTable(_))));
    assert!(std::format!("{e}").contains("copy A erased, copy B"), "{e}");
}

#[test]
fn frames_of_the_wrong_size_and_console_garbage_are_refused_plainly() {
    let mut memory = chip_image(true);
    with_buoy(&mut memory, Config::default(), |b| {
        for (w, h) in [(0, 10), (321, 10), (10, 400)] {
            let r = b
                .process(
                    FrameInfo {
                        width: w,
                        height: h,
                        id: "bad",
                    },
                    0,
                    &mut NullDisplay,
                )
                .0;
            assert_eq!(r.outcome, Outcome::BadSize);
            assert!(std::format!("{r}").contains("does not fit"), "{r}");
        }
        show(b, 0, 0, 0);
        let mut out = String::new();
        let mut garbage = vec![b'x'; 1_000_000];
        garbage.extend_from_slice(b"\nlabel 4 \xff\xfe\nstatus\n");
        b.console_input(&garbage, &mut out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("error: line longer than 160 bytes ignored"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("not UTF-8"), "{}", lines[1]);
        assert!(lines[2].starts_with("ok model"), "{}", lines[2]);
        assert!(out.len() < 2000, "a reply echoed the garbage");
        assert_eq!(b.labelled_examples(), 0);
    });
}

#[test]
fn counts_and_telemetry_follow_the_classifications() {
    let mut memory = chip_image(true);
    let config = Config {
        window_s: 10,
        ..Config::default()
    };
    with_buoy(&mut memory, config, |b| {
        show(b, 0, 0, 0);
        assert!(reply(b, "addclass disk").starts_with("ok"));
        assert!(reply(b, "addclass cross").starts_with("ok"));
        assert!(reply(b, "label 1 disk").starts_with("ok"));
        let mut closed = Vec::new();
        // Frames 2..=12 at 1 per second: frame 11 (t = 10 s) opens window 1.
        for n in 2..=12u64 {
            let (w, h, gray) = shape(0, n as usize);
            b.roi_buffer()[..w * h].copy_from_slice(&gray);
            let (_, report) = b.process(
                FrameInfo {
                    width: w,
                    height: h,
                    id: "f",
                },
                (n - 1) * 1000,
                &mut NullDisplay,
            );
            closed.extend(report);
        }
        assert_eq!(closed.len(), 1);
        let decoded = Telemetry::decode(&closed[0].bytes).unwrap();
        assert_eq!(decoded, closed[0].message);
        // Window 0 held frames 1..=10: frame 1 unknown (no labels), 2..=10 disks.
        assert_eq!((decoded.frames, decoded.unknown), (10, 1));
        assert_eq!(decoded.counts.as_slice(), &[9, 0]);
        let counts = reply(b, "counts");
        assert!(
            counts.contains("disk=2") && counts.contains("unknown=0"),
            "{counts}"
        );
        // The class table travels before the counts: due after boot and
        // after the class changes, then not again until the next change.
        let mut parts = Vec::new();
        assert_eq!(b.class_table_update(|p| parts.push(p.to_vec())), 1);
        let part = seaclr_shared::telemetry::ClassTablePart::decode(&parts[0]).unwrap();
        assert_eq!(part.names().collect::<Vec<_>>(), ["disk", "cross"]);
        assert_eq!(b.class_table_update(|_| ()), 0);
        assert!(reply(b, "forget class cross").starts_with("ok"));
        assert_eq!(b.class_table_update(|_| ()), 1);
        let tele = reply(b, "telemetry");
        assert!(tele.starts_with("ok telemetry"), "{tele}");
        let status = reply(b, "status");
        assert!(
            status.contains("RAM:") && status.contains("MACs") && status.contains("label store"),
            "{status}"
        );
    });
}

#[test]
fn the_screen_is_drawn_on_the_board_display() {
    let mut memory = chip_image(true);
    with_buoy(&mut memory, Config::default(), |b| {
        let (w, h, gray) = shape(0, 0);
        b.roi_buffer()[..w * h].copy_from_slice(&gray);
        let mut display = MockDisplay::<Rgb565>::new();
        display.set_allow_out_of_bounds_drawing(true);
        display.set_allow_overdraw(true);
        b.process(
            FrameInfo {
                width: w,
                height: h,
                id: "f",
            },
            0,
            &mut display,
        );
        // The title bar's blue at the top-left corner.
        assert_eq!(display.get_pixel(Point::new(0, 0)), Some(Rgb565::BLUE));
    });
}
