//! Power cuts at random flash operations during a labelling session, with
//! the real engine, kNN head and label store on the flash image file: after
//! reboot every acknowledged label is there, and nothing unacknowledged.

use seaclr_device::buoy::Config;
use seaclr_firmware_sim::display::{Framebuffer, HEIGHT, WIDTH};
use seaclr_firmware_sim::flash_file::{FlashFile, Layout};
use seaclr_firmware_sim::frames::{FolderSource, Frame, FrameSource, Order};
use seaclr_firmware_sim::host::{self, HostMemory};
use seaclr_firmware_sim::power::PowerSupply;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/flowcam-demo"
    ))
}

fn frames(n: usize) -> Vec<Frame> {
    let mut src = FolderSource::new(&data(), Order::Interleaved).unwrap();
    (0..n).map(|_| src.next_frame().unwrap().unwrap()).collect()
}

#[test]
fn every_acknowledged_label_survives_random_power_cuts() {
    let frames = frames(12);
    let blob = seaclr_firmware_sim::dev_model::random_blob(3, 64, &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("seaclr-power-cuts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cuts_in_boot = 0;
    let mut cuts_in_session = 0;
    for seed in 0..24u64 {
        let path = dir.join(format!("seed{seed}.img"));
        // A small store region (2 x 8 KiB halves) so compactions happen too.
        let layout = Layout {
            model_capacity: 64 * 1024,
            store_capacity: 16 * 1024,
        };
        let mut chip = FlashFile::create(&path, layout).unwrap();
        seaclr_device::flash::install_model(&mut chip, &blob).unwrap();
        drop(chip);
        // Power fails somewhere among the first 60 flash operations (format included).
        let flash = FlashFile::open(&path, PowerSupply::random_cut(seed, 60)).unwrap();
        let mut memory = HostMemory::new();
        let mut screen = Framebuffer::new(WIDTH, HEIGHT);
        let buoy = memory.boot(Config::default(), flash.clone());
        let mut acked: Vec<usize> = Vec::new(); // per class index
        let mut names: Vec<String> = Vec::new();
        match buoy {
            Err(e) => {
                assert!(flash.power_cut(), "boot failed without a cut: {e}");
                cuts_in_boot += 1;
            }
            Ok(mut buoy) => {
                'session: for round in 0..6 {
                    for f in &frames {
                        let (r, _) = host::present(&mut buoy, f, 320, 0, &mut screen);
                        let class = f.truth.clone().unwrap();
                        if !names.contains(&class) {
                            let reply = host::console_lines(
                                &mut buoy,
                                format!("addclass {class}").as_bytes(),
                            );
                            if flash.power_cut() {
                                break 'session;
                            }
                            assert!(reply[0].starts_with("ok"), "{reply:?}");
                            names.push(class.clone());
                            acked.push(0);
                        }
                        let reply = host::console_lines(
                            &mut buoy,
                            format!("label {} {class}", r.number).as_bytes(),
                        );
                        if reply[0].starts_with("ok") && !reply[0].contains("not stored") {
                            acked[names.iter().position(|n| *n == class).unwrap()] += 1;
                        }
                        if flash.power_cut() {
                            assert!(
                                reply[0].starts_with("error:"),
                                "cut write acknowledged: {reply:?}"
                            );
                            break 'session;
                        }
                    }
                    assert!(round < 5, "seed {seed}: the power never failed");
                }
                cuts_in_session += 1;
            }
        }
        drop(flash);
        let mut memory = HostMemory::new();
        let rebooted = memory
            .boot(
                Config::default(),
                FlashFile::open(&path, PowerSupply::steady()).unwrap(),
            )
            .unwrap_or_else(|e| panic!("seed {seed}: reboot failed: {e}"));
        let classes: Vec<String> = rebooted.class_names().flatten().map(String::from).collect();
        assert_eq!(classes, names, "seed {seed}: classes after reboot");
        let per_class: Vec<usize> = (0..acked.len()).map(|c| rebooted.examples_of(c)).collect();
        assert_eq!(
            per_class, acked,
            "seed {seed}: examples per class after reboot"
        );
    }
    assert!(
        cuts_in_session >= 10,
        "only {cuts_in_session} cuts hit the labelling session"
    );
    eprintln!(
        "power cuts: {cuts_in_boot} during boot/format, {cuts_in_session} during labelling; all acknowledged labels intact"
    );
}
