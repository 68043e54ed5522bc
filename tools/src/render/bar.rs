//! A file's unsynced ranges drawn as a fixed-width bar, and long range
//! lists folded.

use anstyle::{AnsiColor, Style};

/// Cells in a bar.
pub const WIDTH: usize = 32;

/// Ranges listed before the rest are folded into `... and N more`.
pub const RANGES_SHOWN: usize = 4;

/// How text is drawn: with colors (a terminal that wants them) or plain
/// ASCII (a pipe, a file, `--no-color`, `NO_COLOR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Look {
    pub color: bool,
}

impl Look {
    /// Colors only on a terminal, and neither with `--no-color` nor with a
    /// non-empty `NO_COLOR` (<https://no-color.org>).
    pub fn choose(terminal: bool, no_color_flag: bool, no_color_env: Option<&str>) -> Look {
        let env_off = no_color_env.is_some_and(|v| !v.is_empty());
        Look {
            color: terminal && !no_color_flag && !env_off,
        }
    }

    /// `text` in `style` when colored, else as it is.
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
}

/// What a cell of a bar stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Every byte durable.
    Durable,
    /// Some bytes unsynced, some durable.
    Partly,
    /// Every byte unsynced.
    Unsynced,
}

/// The cells of a bar over `[0, extent)`: a cell is unsynced when the
/// bytes it stands for all are, partly when some are (so a range of one
/// byte in a large file still shows).
pub fn cells(ranges: &[(u64, u64)], extent: u64, width: usize) -> Vec<Cell> {
    let mut cover = vec![0u128; width];
    if extent == 0 || width == 0 {
        return vec![Cell::Durable; width];
    }
    // Scaled by `width`, cell c is [c*e, (c+1)*e) and a range [s*w, end*w).
    let w = width as u128;
    let e = u128::from(extent);
    for &(start, end) in ranges {
        if end <= start {
            continue;
        }
        let (s, t) = (u128::from(start) * w, u128::from(end) * w);
        let first = (s / e).min(w - 1) as usize;
        let last = (t.div_ceil(e) - 1).min(w - 1) as usize;
        for (c, got) in cover.iter_mut().enumerate().take(last + 1).skip(first) {
            let (lo, hi) = (c as u128 * e, (c as u128 + 1) * e);
            *got += t.min(hi).saturating_sub(s.max(lo));
        }
    }
    cover
        .into_iter()
        .map(|got| match got {
            0 => Cell::Durable,
            g if g >= e => Cell::Unsynced,
            _ => Cell::Partly,
        })
        .collect()
}

/// The bar of a file of `size` bytes with `ranges` unsynced, `WIDTH`
/// cells between brackets: `#` unsynced, `+` partly unsynced, `.` durable
/// (colored blocks when `look.color`). A file of no bytes has an empty
/// bar.
pub fn bar(ranges: &[(u64, u64)], size: u64, look: Look) -> String {
    let extent = ranges.iter().map(|r| r.1).max().unwrap_or(0).max(size);
    if extent == 0 {
        return format!("[{}]", " ".repeat(WIDTH));
    }
    let cells = cells(ranges, extent, WIDTH);
    let mut out = String::from("[");
    // Runs of one kind painted at once keep the escapes few.
    let mut i = 0;
    while i < cells.len() {
        let kind = cells[i];
        let run = cells[i..].iter().take_while(|&&c| c == kind).count();
        let (glyph, ascii, color) = match kind {
            Cell::Unsynced => ("█", "#", AnsiColor::Red),
            Cell::Partly => ("▒", "+", AnsiColor::Yellow),
            Cell::Durable => ("─", ".", AnsiColor::Green),
        };
        let text = if look.color { glyph } else { ascii }.repeat(run);
        out.push_str(&look.paint(Style::new().fg_color(Some(color.into())), &text));
        i += run;
    }
    out.push(']');
    out
}

/// `ranges` as `start..end` words, the first [`RANGES_SHOWN`] of them and
/// then `... and N more`.
pub fn fold_ranges(ranges: &[(u64, u64)]) -> String {
    let mut parts: Vec<String> = ranges
        .iter()
        .take(RANGES_SHOWN)
        .map(|(s, e)| format!("{s}..{e}"))
        .collect();
    if ranges.len() > RANGES_SHOWN {
        parts.push(format!("... and {} more", ranges.len() - RANGES_SHOWN));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Look = Look { color: false };

    #[test]
    fn cells_tell_unsynced_partly_and_durable_parts() {
        use Cell::*;
        assert_eq!(
            cells(&[(0, 50)], 100, 4),
            [Unsynced, Unsynced, Durable, Durable]
        );
        assert_eq!(
            cells(&[(50, 51)], 100, 4),
            [Durable, Durable, Partly, Durable]
        );
        assert_eq!(
            cells(&[(10, 60)], 100, 4),
            [Partly, Unsynced, Partly, Durable]
        );
        // Two ranges filling a cell between them fill it.
        assert_eq!(cells(&[(0, 10), (10, 25)], 100, 4)[0], Unsynced);
        // Smaller than the bar: a byte spans cells.
        assert_eq!(
            cells(&[(2, 3)], 3, 6),
            [Durable, Durable, Durable, Durable, Unsynced, Unsynced]
        );
        // A byte in a huge file still shows.
        let c = cells(&[(1 << 40, (1 << 40) + 1)], 1 << 41, WIDTH);
        assert_eq!(c.iter().filter(|&&x| x != Durable).count(), 1);
        assert_eq!(c[WIDTH / 2], Partly);
        // Sparse ranges over the whole file are partly everywhere, not full.
        let sparse: Vec<(u64, u64)> = (0..31)
            .map(|i| (i * 1_300_000, i * 1_300_000 + 100_000))
            .collect();
        assert!(
            cells(&sparse, 39_100_000, WIDTH)
                .iter()
                .all(|&c| c == Partly)
        );
        assert_eq!(cells(&[(0, 10)], 0, 4), [Durable; 4]);
        assert_eq!(cells(&[(5, 5)], 10, 4), [Durable; 4]);
    }

    #[test]
    fn plain_bars_are_ascii_of_a_fixed_width() {
        let b = bar(&[(12, 26)], 26, PLAIN);
        assert_eq!(b.len(), WIDTH + 2, "{b}");
        assert!(
            b.starts_with("[..............+#") && b.ends_with("##]"),
            "{b}"
        );
        assert!(b.is_ascii() && !b.contains('\x1b'), "{b}");
        assert_eq!(bar(&[], 0, PLAIN), format!("[{}]", " ".repeat(WIDTH)));
        // Ranges past the size (a shrink's) stretch the bar.
        assert!(bar(&[(0, 8)], 4, PLAIN).ends_with("#]"));
        assert!(bar(&[(0, 1)], 1 << 20, PLAIN).starts_with("[+..."));
    }

    #[test]
    fn colored_bars_use_escapes_only_when_asked() {
        let b = bar(&[(0, 10)], 20, Look { color: true });
        assert!(b.contains("\x1b[") && b.contains('█'), "{b:?}");
        assert!(Look::choose(true, false, None).color);
        assert!(!Look::choose(false, false, None).color);
        assert!(!Look::choose(true, true, None).color);
        assert!(!Look::choose(true, false, Some("1")).color);
        assert!(Look::choose(true, false, Some("")).color);
    }

    #[test]
    fn long_range_lists_are_folded() {
        let rs: Vec<(u64, u64)> = (0..31).map(|i| (i * 10, i * 10 + 5)).collect();
        assert_eq!(
            fold_ranges(&rs),
            "0..5 10..15 20..25 30..35 ... and 27 more"
        );
        assert_eq!(fold_ranges(&rs[..2]), "0..5 10..15");
        assert_eq!(fold_ranges(&[]), "");
    }
}
