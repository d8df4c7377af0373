//! What really changed inside a host's update. The graphics pipeline's
//! H.264 hosts repaint their whole surface every frame (FreeRDP's shadow
//! server names the whole screen as the changed region however little
//! moved), which would send pixel viewers the whole screen per keystroke.
//! A hash per 64×64 tile of the session's image tells which tiles of such
//! an update differ from what viewers were last sent.

use crate::protocol::frame::Rect;

const TILE: usize = 64;
/// Updates smaller than this many tiles are passed on as they are.
const REFINE_FROM_TILES: u64 = 4;
/// A tile whose hash is unknown: never equal to a computed one (those are odd).
const UNKNOWN: u64 = 0;

pub struct TileHashes {
    columns: usize,
    rows: usize,
    hashes: Vec<u64>,
}

impl TileHashes {
    pub fn new(width: u16, height: u16) -> Self {
        let (columns, rows) = (usize::from(width).div_ceil(TILE), usize::from(height).div_ceil(TILE));
        Self { columns, rows, hashes: vec![UNKNOWN; columns * rows] }
    }

    /// The parts of `damage` whose pixels in `rgba` (rows `stride` bytes
    /// apart, `width` × `height`) changed since they were last seen here.
    pub fn changed(&mut self, rgba: &[u8], stride: usize, (width, height): (u16, u16), damage: &[Rect]) -> Vec<Rect> {
        if self.columns != usize::from(width).div_ceil(TILE) || self.rows != usize::from(height).div_ceil(TILE) {
            *self = Self::new(width, height);
        }
        let mut changed = Vec::new();
        for rect in damage.iter().map(|rect| rect.clipped(width, height)).filter(|rect| !rect.is_empty()) {
            let (first_column, last_column) =
                (usize::from(rect.x) / TILE, (usize::from(rect.x) + usize::from(rect.width) - 1) / TILE);
            let (first_row, last_row) =
                (usize::from(rect.y) / TILE, (usize::from(rect.y) + usize::from(rect.height) - 1) / TILE);
            let tiles = ((last_column - first_column + 1) * (last_row - first_row + 1)) as u64;
            if tiles < REFINE_FROM_TILES {
                // Passed on whole; its tiles must be hashed afresh next time.
                for row in first_row..=last_row {
                    self.hashes[row * self.columns + first_column..=row * self.columns + last_column].fill(UNKNOWN);
                }
                changed.push(rect);
                continue;
            }
            for row in first_row..=last_row {
                let mut run: Option<Rect> = None;
                for column in first_column..=last_column {
                    let tile = tile_rect(column, row, width, height);
                    let hash = hash_tile(rgba, stride, tile);
                    let slot = &mut self.hashes[row * self.columns + column];
                    let differs = *slot != hash;
                    *slot = hash;
                    if differs {
                        let part = intersection(tile, rect);
                        run = Some(run.map_or(part, |run| run.union(&part)));
                    } else if let Some(done) = run.take() {
                        changed.push(done);
                    }
                }
                changed.extend(run);
            }
        }
        changed
    }
}

fn tile_rect(column: usize, row: usize, width: u16, height: u16) -> Rect {
    let (x, y) = ((column * TILE) as u16, (row * TILE) as u16);
    Rect::new(x, y, TILE as u16, TILE as u16).clipped(width, height)
}

fn intersection(a: Rect, b: Rect) -> Rect {
    let x = a.x.max(b.x);
    let y = a.y.max(b.y);
    let right = (u32::from(a.x) + u32::from(a.width)).min(u32::from(b.x) + u32::from(b.width));
    let bottom = (u32::from(a.y) + u32::from(a.height)).min(u32::from(b.y) + u32::from(b.height));
    Rect::new(x, y, (right - u32::from(x)) as u16, (bottom - u32::from(y)) as u16)
}

/// A 64-bit hash of the tile's RGB bytes (alpha is unspecified in a
/// decoder's image and must not count as a change); always odd.
fn hash_tile(rgba: &[u8], stride: usize, tile: Rect) -> u64 {
    let mut hash: u64 = 0x243f_6a88_85a3_08d3;
    for row in usize::from(tile.y)..usize::from(tile.y) + usize::from(tile.height) {
        let start = row * stride + usize::from(tile.x) * 4;
        let line = &rgba[start..start + usize::from(tile.width) * 4];
        for pixels in line.chunks(8) {
            let mut word = [0u8; 8];
            word[..pixels.len()].copy_from_slice(pixels);
            // Two pixels per word, alpha bytes masked out.
            let word = u64::from_le_bytes(word) & 0x00ff_ffff_00ff_ffff;
            hash = (hash.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    hash | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize) -> Vec<u8> {
        vec![40; width * height * 4]
    }

    #[test]
    fn a_whole_screen_update_comes_down_to_the_tiles_that_changed() {
        let (width, height) = (256usize, 192usize);
        let mut pixels = image(width, height);
        let mut tiles = TileHashes::new(width as u16, height as u16);
        let whole = [Rect::new(0, 0, width as u16, height as u16)];
        assert_eq!(
            tiles.changed(&pixels, width * 4, (256, 192), &whole),
            [Rect::new(0, 0, 256, 64), Rect::new(0, 64, 256, 64), Rect::new(0, 128, 256, 64)],
            "first sight: everything"
        );
        assert_eq!(tiles.changed(&pixels, width * 4, (256, 192), &whole), [], "nothing moved");
        // One pixel in the second tile of the second row.
        pixels[(70 * width + 100) * 4] = 200;
        assert_eq!(tiles.changed(&pixels, width * 4, (256, 192), &whole), [Rect::new(64, 64, 64, 64)]);
        // Alpha alone is no change.
        pixels[(5 * width + 5) * 4 + 3] = 0;
        assert_eq!(tiles.changed(&pixels, width * 4, (256, 192), &whole), []);
    }

    #[test]
    fn small_updates_pass_whole_and_are_never_mistaken_for_unchanged_later() {
        let (width, height) = (256usize, 256usize);
        let mut pixels = image(width, height);
        let mut tiles = TileHashes::new(256, 256);
        let whole = [Rect::new(0, 0, 256, 256)];
        tiles.changed(&pixels, width * 4, (256, 256), &whole);
        // A small update changes a tile, then a big one puts it back as it was.
        pixels[0] = 99;
        assert_eq!(tiles.changed(&pixels, width * 4, (256, 256), &[Rect::new(0, 0, 8, 8)]), [Rect::new(0, 0, 8, 8)]);
        pixels[0] = 40;
        let back = tiles.changed(&pixels, width * 4, (256, 256), &whole);
        assert_eq!(back, [Rect::new(0, 0, 64, 64)], "the tile the small update touched is sent again");
        // Damage that is only partly over a changed tile is cut to the damage.
        pixels[(10 * width + 10) * 4] = 1;
        assert_eq!(
            tiles.changed(&pixels, width * 4, (256, 256), &[Rect::new(0, 0, 200, 150)]),
            [Rect::new(0, 0, 64, 64)]
        );
        pixels[(130 * width + 190) * 4] = 1;
        assert_eq!(
            tiles.changed(&pixels, width * 4, (256, 256), &[Rect::new(0, 0, 200, 150)]),
            [Rect::new(128, 128, 64, 22)]
        );
    }
}
