//! Progress on stderr: the only part that knows indicatif. Shown only when
//! stderr is a terminal and neither --quiet, --no-progress nor JSON logs were
//! asked for. One line under 80 columns: the stage (reading, checking,
//! applying, committing, writing reports), how far, orders per second, and
//! the accepted and failed orders so far. It stays on screen until the
//! summary line replaces it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
}

/// Orders so far, for the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub orders: u64,
    pub accepted: u64,
    pub failed: u64,
}

/// `12345` as `12.3k`, to keep the line short: at most six characters.
fn short(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_949 => format!("{:.1}k", n as f64 / 1e3),
        999_950..=99_949_999 => format!("{:.1}M", n as f64 / 1e6),
        99_950_000..=999_499_999 => format!("{:.0}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

impl Progress {
    /// A bar over `total` bytes when the size is known, else a spinner.
    pub fn new(allowed: bool, total: Option<u64>, stage: &str) -> Progress {
        let start = Instant::now();
        if !allowed || !std::io::stderr().is_terminal() {
            return Progress { bar: None, start };
        }
        let (bar, template) = match total {
            Some(n) => (
                ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                "{prefix:>15} [{bar:10}] {percent:>3}% {msg}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{prefix:>15} {spinner} {msg}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = bar.with_style(style);
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar: Some(bar),
            start,
        }
    }

    /// Bytes read so far (of the total) and the orders decided.
    pub fn update(&self, bytes: u64, t: Tally) {
        let Some(b) = &self.bar else { return };
        if b.length().is_some() {
            b.set_position(bytes);
        }
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        b.set_message(format!(
            "{} orders {}/s {} ok {} failed",
            short(t.orders),
            short((t.orders as f64 / secs) as u64),
            short(t.accepted),
            short(t.failed)
        ));
    }

    /// The stage the run is in now.
    pub fn set_stage(&self, stage: &str) {
        if let Some(b) = &self.bar {
            b.set_prefix(stage.to_string());
            b.tick();
        }
    }

    /// Gone from the screen, for the summary line in its place.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_fits_in_80_columns_at_any_size() {
        let samples = [
            0,
            9_999,
            10_000,
            999_949,
            999_950,
            99_949_999,
            99_950_000,
            999_499_999,
            999_500_000,
            123_456_789_012,
        ];
        let widest = samples.iter().map(|&n| short(n)).max_by_key(|s| s.len());
        let widest = widest.expect("samples");
        assert!(widest.len() <= 6, "{widest}");
        let line = format!(
            "{:>15} [{}] {:>3}% {widest} orders {widest}/s {widest} ok {widest} failed",
            "writing reports",
            "=".repeat(10),
            100,
        );
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
        assert_eq!(short(1234), "1234");
        assert_eq!(short(12_345), "12.3k");
        assert_eq!(short(999_949), "999.9k");
        assert_eq!(short(999_950), "1.0M");
        assert_eq!(short(2_500_000), "2.5M");
        assert_eq!(short(123_400_000), "123M");
        assert_eq!(short(1_500_000_000), "1.5G");
    }
}
