//! Where the remote desktop sits in the window: scaled to fit with its
//! aspect kept (letterboxed), never cropped, so a window smaller or
//! larger than the desktop still shows all of it while a resize is on its
//! way. The same mapping takes pointer positions back to desktop pixels.

use rap_wire::frame::Rect;

use crate::Desktop;

/// The desktop's place in a window, in window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Fit {
    /// The largest rectangle with the desktop's aspect that fits the
    /// window, centred. `None` while either side is empty.
    pub fn of(desktop: (u16, u16), window: (u32, u32)) -> Option<Self> {
        let (dw, dh) = (u64::from(desktop.0), u64::from(desktop.1));
        let (ww, wh) = (u64::from(window.0), u64::from(window.1));
        if dw == 0 || dh == 0 || ww == 0 || wh == 0 {
            return None;
        }
        // Width-bound unless that makes it too tall.
        let (width, height) =
            if ww * dh <= wh * dw { (ww, (ww * dh / dw).max(1)) } else { ((wh * dw / dh).max(1), wh) };
        Some(Self {
            x: ((ww - width) / 2) as u32,
            y: ((wh - height) / 2) as u32,
            width: width as u32,
            height: height as u32,
        })
    }

    /// The desktop pixel under window position (`x`, `y`), clamped to the
    /// desktop's edge (a drag that leaves the picture keeps its last row).
    pub fn to_desktop(&self, desktop: (u16, u16), x: f64, y: f64) -> (u16, u16) {
        let along = |position: f64, start: u32, span: u32, side: u16| {
            let relative = (position - f64::from(start)) / f64::from(span.max(1));
            (relative * f64::from(side)).clamp(0.0, f64::from(side.saturating_sub(1))) as u16
        };
        (along(x, self.x, self.width, desktop.0), along(y, self.y, self.height, desktop.1))
    }
}

/// Paints `desktop` into a window buffer of `window` size (row-major `0RGB`),
/// scaled by nearest neighbour into its [`Fit`], black around it; `dimmed`
/// darkens it to show the picture is no longer live.
pub fn paint(desktop: &Desktop, buffer: &mut [u32], window: (u32, u32), dimmed: bool) {
    buffer.fill(0);
    if let Some(fit) = Fit::of((desktop.width, desktop.height), window) {
        paint_span(desktop, buffer, window, dimmed, &fit, (0, fit.width), (0, fit.height));
    }
}

/// Repaints only the window pixels that show `rect` of the desktop, exactly
/// as [`paint`] would paint them, into a buffer that holds the previous
/// paint; returns that window rectangle (`x, y, width, height`) for a
/// damage-only present, `None` if it covers no window pixel.
pub fn paint_region(
    desktop: &Desktop,
    buffer: &mut [u32],
    window: (u32, u32),
    dimmed: bool,
    rect: Rect,
) -> Option<(u32, u32, u32, u32)> {
    let fit = Fit::of((desktop.width, desktop.height), window)?;
    // Window column c (from the fit's left) shows desktop column
    // c * desktop / fit (as `paint` maps it): the columns showing
    // [start, end) are [ceil(start * fit / desktop), ceil(end * fit / desktop)).
    let span = |start: u16, length: u16, side: u16, fitted: u32| {
        let at =
            |edge: u32| (u64::from(edge) * u64::from(fitted)).div_ceil(u64::from(side)).min(u64::from(fitted)) as u32;
        (at(u32::from(start)), at(u32::from(start) + u32::from(length)))
    };
    let columns = span(rect.x, rect.width, desktop.width, fit.width);
    let rows = span(rect.y, rect.height, desktop.height, fit.height);
    if columns.0 >= columns.1 || rows.0 >= rows.1 {
        return None;
    }
    paint_span(desktop, buffer, window, dimmed, &fit, columns, rows);
    Some((fit.x + columns.0, fit.y + rows.0, columns.1 - columns.0, rows.1 - rows.0))
}

/// Paints fit columns `columns` and rows `rows` (from the fit's corner).
fn paint_span(
    desktop: &Desktop,
    buffer: &mut [u32],
    window: (u32, u32),
    dimmed: bool,
    fit: &Fit,
    columns: (u32, u32),
    rows: (u32, u32),
) {
    let (dw, dh) = (usize::from(desktop.width), usize::from(desktop.height));
    let (fw, fh) = (fit.width as usize, fit.height as usize);
    let stride = window.0 as usize;
    let (first, last) = (columns.0 as usize, columns.1 as usize);
    // Source column per target column, computed once per paint.
    let sources: Vec<usize> = (first..last).map(|column| column * dw / fw).collect();
    let one_to_one = fw == dw && !dimmed;
    for row in rows.0 as usize..rows.1 as usize {
        let source_row = row * dh / fh;
        let source = &desktop.pixels[source_row * dw..][..dw];
        let start = (fit.y as usize + row) * stride + fit.x as usize;
        let target = &mut buffer[start + first..start + last];
        if one_to_one {
            target.copy_from_slice(&source[first..last]);
            continue;
        }
        for (word, &column) in target.iter_mut().zip(&sources) {
            let pixel = source[column];
            *word = if dimmed { (pixel >> 2) & 0x003f_3f3f } else { pixel };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktop_fits_the_window_with_its_aspect_kept() {
        assert_eq!(Fit::of((1280, 800), (1280, 800)), Some(Fit { x: 0, y: 0, width: 1280, height: 800 }));
        // A wider window: bars left and right.
        assert_eq!(Fit::of((1280, 800), (1600, 800)), Some(Fit { x: 160, y: 0, width: 1280, height: 800 }));
        // A taller, smaller window: scaled down, bars above and below.
        assert_eq!(Fit::of((1280, 800), (640, 600)), Some(Fit { x: 0, y: 100, width: 640, height: 400 }));
        assert_eq!(Fit::of((0, 800), (640, 600)), None);
        assert_eq!(Fit::of((1280, 800), (0, 600)), None);
    }

    #[test]
    fn pointer_positions_map_back_to_desktop_pixels() {
        let fit = Fit::of((1280, 800), (640, 600)).expect("fits");
        assert_eq!(fit.to_desktop((1280, 800), 0.0, 100.0), (0, 0));
        assert_eq!(fit.to_desktop((1280, 800), 320.0, 300.0), (640, 400));
        assert_eq!(fit.to_desktop((1280, 800), 639.9, 499.9), (1279, 799));
        assert_eq!(fit.to_desktop((1280, 800), -5.0, 900.0), (0, 799), "clamped to the edge");
    }

    #[test]
    fn a_region_repaints_exactly_what_a_whole_paint_would() {
        let mut desktop = Desktop::default();
        desktop.resize(37, 23);
        let mut next = desktop.clone();
        for (index, word) in next.pixels.iter_mut().enumerate() {
            *word = (index as u32).wrapping_mul(2_654_435_761) & 0x00ff_ffff;
        }
        for window in [(37, 23), (100, 40), (20, 30), (74, 46), (53, 61)] {
            for rect in
                [Rect::new(0, 0, 37, 23), Rect::new(5, 3, 7, 9), Rect::new(36, 22, 1, 1), Rect::new(0, 10, 37, 1)]
            {
                let mut buffer = vec![0; (window.0 * window.1) as usize];
                paint(&desktop, &mut buffer, window, false);
                // The desktop changes only inside `rect`.
                let mut changed = desktop.clone();
                for y in rect.y..rect.y + rect.height {
                    for x in rect.x..rect.x + rect.width {
                        let at = usize::from(y) * 37 + usize::from(x);
                        changed.pixels[at] = next.pixels[at];
                    }
                }
                let damage = paint_region(&changed, &mut buffer, window, false, rect);
                let mut whole = vec![0; buffer.len()];
                paint(&changed, &mut whole, window, false);
                assert_eq!(buffer, whole, "window {window:?}, rect {rect:?}");
                if let Some((x, y, width, height)) = damage {
                    assert!(x + width <= window.0 && y + height <= window.1, "damage inside the window");
                }
            }
        }
    }

    #[test]
    fn painting_scales_into_the_fit_and_dims_when_asked() {
        let mut desktop = Desktop::default();
        desktop.resize(2, 2);
        desktop.pixels.copy_from_slice(&[0x00ff_0000, 0x0000_ff00, 0x0000_00ff, 0x00ff_ffff]);
        let mut buffer = vec![7; 6 * 4];
        paint(&desktop, &mut buffer, (6, 4), false);
        // 4×4 picture centred in 6×4: a black column either side.
        assert_eq!(&buffer[0..6], &[0, 0x00ff_0000, 0x00ff_0000, 0x0000_ff00, 0x0000_ff00, 0]);
        assert_eq!(&buffer[18..24], &[0, 0x0000_00ff, 0x0000_00ff, 0x00ff_ffff, 0x00ff_ffff, 0]);
        paint(&desktop, &mut buffer, (6, 4), true);
        assert_eq!(buffer[1], 0x003f_0000, "a quarter of the brightness");
    }
}
