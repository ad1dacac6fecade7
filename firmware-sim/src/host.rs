//! Running the device application on the host: its RAM in a `Box`, the
//! model slot mapped into a buffer, frames copied into the camera buffer
//! (binned 2x2 first when bigger, as the sensor would), console replies
//! collected as lines.

use crate::display::Framebuffer;
use crate::flash_file::FlashFile;
use crate::frames::Frame;
use seaclr_device::buoy::{BootError, Buoy, Config, FrameInfo, FrameResult, WindowReport};
use seaclr_device::ram::{DeviceRam, MAX_ROI_SIDE};

/// The buoy on the host's flash image.
pub type HostBuoy<'r> = Buoy<'r, FlashFile>;

/// What a host buoy borrows: the application's RAM and the buffer the
/// model slot is mapped into (memory-mapped flash on a board).
pub struct HostMemory {
    ram: Box<DeviceRam>,
    model: Vec<u8>,
}

impl Default for HostMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl HostMemory {
    /// Fresh RAM and a model buffer as large as the default model region.
    pub fn new() -> Self {
        Self {
            ram: Box::new(DeviceRam::new()),
            model: vec![0; seaclr_shared::partition::DEFAULT_MODEL_CAPACITY as usize],
        }
    }

    /// Boots the application from `flash` (a "power-on").
    pub fn boot(
        &mut self,
        config: Config,
        flash: FlashFile,
    ) -> Result<HostBuoy<'_>, BootError<crate::flash_file::FlashError>> {
        Buoy::boot(config, flash, &mut self.model, &mut self.ram)
    }
}

/// Camera-side binning: halves the ROI (2x2 average) until its longer side
/// fits `max_side`, as a sensor's binning mode would before the ROI reaches RAM.
pub fn bin_to_fit(
    mut w: usize,
    mut h: usize,
    mut gray: Vec<u8>,
    max_side: usize,
) -> (usize, usize, Vec<u8>) {
    while w.max(h) > max_side.max(1) && w >= 2 && h >= 2 {
        let (nw, nh) = (w / 2, h / 2);
        let mut out = vec![0u8; nw * nh];
        for y in 0..nh {
            for x in 0..nw {
                let s = gray[2 * y * w + 2 * x] as u32
                    + gray[2 * y * w + 2 * x + 1] as u32
                    + gray[(2 * y + 1) * w + 2 * x] as u32
                    + gray[(2 * y + 1) * w + 2 * x + 1] as u32;
                out[y * nw + x] = ((s + 2) / 4) as u8;
            }
        }
        (w, h, gray) = (nw, nh, out);
    }
    (w, h, gray)
}

/// Delivers `frame` to the buoy's camera buffer (binned to `max_roi`, at
/// most the buffer's side) and processes it at `now_ms`.
pub fn present(
    buoy: &mut HostBuoy<'_>,
    frame: &Frame,
    max_roi: usize,
    now_ms: u64,
    screen: &mut Framebuffer,
) -> (FrameResult, Option<WindowReport>) {
    let (w, h, gray) = bin_to_fit(
        frame.width as usize,
        frame.height as usize,
        frame.gray.clone(),
        max_roi.min(MAX_ROI_SIDE),
    );
    let info = FrameInfo {
        width: w,
        height: h,
        id: &frame.id,
    };
    if let Some(dst) = buoy.roi_buffer().get_mut(..w * h) {
        dst.copy_from_slice(&gray);
    }
    buoy.process(info, now_ms, screen)
}

/// Checks that a host-built label store image mounts (as the device would
/// mount it) and says what it holds.
pub fn check_label_store(image: &[u8]) -> Result<String, String> {
    use seaclr_edge::knn::KnnHead;
    use seaclr_edge::store::{LabelStore, mock_flash::MockFlash};
    use seaclr_shared::partition::{ERASE_SIZE, WRITE_SIZE};
    if !image.len().is_multiple_of(ERASE_SIZE) || image.is_empty() {
        return Err(format!(
            "{} bytes is not a whole number of {ERASE_SIZE}-byte pages",
            image.len()
        ));
    }
    let mut copy = image.to_vec();
    let mut head = Box::new(KnnHead::new());
    let flash = MockFlash::<WRITE_SIZE, ERASE_SIZE>::new(&mut copy);
    LabelStore::mount(flash, &mut *head).map_err(|e| e.to_string())?;
    let classes = head.classes().count();
    Ok(format!("{classes} classes, {} examples", head.len()))
}

/// One console line (raw bytes, as typed) through the device; the reply lines.
pub fn console_lines(buoy: &mut HostBuoy<'_>, line: &[u8]) -> Vec<String> {
    let mut out = String::new();
    let mut bytes = line.to_vec();
    bytes.push(b'\n');
    // Writing into a String cannot fail.
    let _ = buoy.console_input(&bytes, &mut out);
    out.lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_store_images_are_checked_before_install() {
        assert!(check_label_store(&[]).is_err());
        let blank = check_label_store(&[0xFF; 4096 * 4]).unwrap_err();
        assert!(blank.contains("label store"), "{blank}");
        assert!(
            check_label_store(&[0u8; 100])
                .unwrap_err()
                .contains("pages")
        );
    }

    #[test]
    fn binning_halves_until_the_roi_fits() {
        let (w, h, g) = bin_to_fit(4, 2, vec![0, 2, 4, 6, 0, 2, 4, 6], 2);
        assert_eq!((w, h, g), (2, 1, vec![1, 5]));
        let (w, h, g) = bin_to_fit(3, 3, vec![9; 9], 3);
        assert_eq!((w, h, g.len()), (3, 3, 9));
    }
}
