//! Progress for long work, in one style across hone. On a terminal: bars, redrawn in place. When
//! stderr is a file or a pipe (CI, `nohup`, `| tee`): plain lines with the time of day, one per bar
//! every few seconds and one when the bar ends, so a log shows steps, loss, tokens/s and ETA without
//! control characters. `-q` silences both, `-v` writes lines more often; a caller can also hide a
//! bar (tests, nested work).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How much progress the process shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// No progress at all (`-q`).
    Quiet,
    /// Bars on a terminal; elsewhere a line per bar every [`LINE_INTERVAL`].
    Normal,
    /// As `Normal`, with lines every [`VERBOSE_INTERVAL`] (`-v`).
    Verbose,
}

/// Seconds between the plain lines of one bar when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);
/// The same with `-v`.
pub const VERBOSE_INTERVAL: Duration = Duration::from_secs(1);

static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// Sets the process's verbosity (the CLI's `-q` / `-v`).
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

/// The process's verbosity.
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// A bar over input bytes with throughput and ETA; the message shows counts.
pub fn bytes_bar(total: u64, label: &str, visible: bool) -> ProgressBar {
    let (target, tty) = target(visible);
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let body = "{binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}";
    bar.set_style(style(label, body, tty));
    bar
}

/// A bar over steps; the message carries the stage's live numbers (loss, tokens/s).
pub fn steps_bar(total: u64, label: &str, visible: bool) -> ProgressBar {
    let (target, tty) = target(visible);
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(style(label, "{pos}/{len} eta {eta} {msg}", tty));
    bar
}

/// Prints a line the user needs (a held-out result) above `bar` on a terminal, or at once as its own
/// timestamped line elsewhere; never only inside the bar, and not held back by the line interval.
/// With `-q` or a hidden bar it is still printed.
pub fn println(bar: &ProgressBar, line: &str) {
    if !bar.is_hidden() && std::io::stderr().is_terminal() {
        bar.println(line);
    } else {
        write_line(line);
    }
}

fn style(label: &str, body: &str, tty: bool) -> ProgressStyle {
    let template = if tty { format!("{label:>9} [{{bar:30}}] {body}") } else { format!("{label}: {body}") };
    ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> ")
}

/// Where a bar draws, and whether that is a terminal.
fn target(visible: bool) -> (ProgressDrawTarget, bool) {
    let v = verbosity();
    if !visible || v == Verbosity::Quiet {
        return (ProgressDrawTarget::hidden(), false);
    }
    if std::io::stderr().is_terminal() {
        return (ProgressDrawTarget::stderr(), true);
    }
    let every = if v == Verbosity::Verbose { VERBOSE_INTERVAL } else { LINE_INTERVAL };
    // No rate limit of its own: `Lines` writes at its interval, and sees every update, so the line
    // written when the bar ends is its final state.
    (ProgressDrawTarget::term_like(Box::new(Lines::new(every))), false)
}

/// A stand-in terminal that turns a bar's redraws into timestamped lines on stderr: the newest frame
/// is written when `every` has passed since the last line (or since the bar began), and the last one
/// when the bar goes away, so a short task writes one line and a long one a line per interval.
#[derive(Debug)]
struct Lines {
    every: Duration,
    created: Instant,
    state: Mutex<LinesState>,
}

#[derive(Debug, Default)]
struct LinesState {
    /// The frame being drawn (a bar can draw several lines; they are joined).
    frame: String,
    /// The newest complete frame not yet written.
    pending: Option<String>,
    last_written: Option<(Instant, String)>,
}

impl Lines {
    fn new(every: Duration) -> Lines {
        Lines { every, created: Instant::now(), state: Mutex::new(LinesState::default()) }
    }

    fn push(&self, s: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = s.trim();
        if !s.is_empty() {
            if !st.frame.is_empty() {
                st.frame.push_str(" | ");
            }
            st.frame.push_str(s);
        }
    }
}

/// `HH:MM:SS` (UTC) of now.
fn clock() -> String {
    let s = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    crate::lock::utc(s)[11..19].to_string()
}

fn write_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[{}] {text}", clock());
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        // Wide enough that indicatif never wraps or cuts a line.
        400
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.push(s);
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.push(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let frame = std::mem::take(&mut st.frame);
        if frame.is_empty() || st.last_written.as_ref().is_some_and(|(_, t)| *t == frame) {
            return Ok(());
        }
        let since = st.last_written.as_ref().map_or(self.created, |(at, _)| *at);
        let due = since.elapsed() >= self.every;
        if due {
            write_line(&frame);
            st.last_written = Some((Instant::now(), frame));
            st.pending = None;
        } else {
            st.pending = Some(frame);
        }
        Ok(())
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(frame) = st.pending.take() {
            write_line(&frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_write_at_most_once_per_interval_and_the_last_frame_at_the_end() {
        let lines = Lines::new(Duration::from_secs(3600));
        for i in 0..5 {
            lines.write_str(&format!("train: {i}/5 loss 1.0")).unwrap();
            lines.flush().unwrap();
        }
        {
            let st = lines.state.lock().unwrap();
            // Nothing is written before the interval; the newest frame waits for it (or the end).
            assert!(st.last_written.is_none());
            assert_eq!(st.pending.as_deref(), Some("train: 4/5 loss 1.0"));
        }
        // Several lines of one frame are joined; an unchanged frame is not written again.
        let lines = Lines::new(Duration::ZERO);
        lines.write_line("a").unwrap();
        lines.write_str("b").unwrap();
        lines.flush().unwrap();
        lines.write_line("a").unwrap();
        lines.write_str("b").unwrap();
        lines.flush().unwrap();
        let st = lines.state.lock().unwrap();
        assert_eq!(st.last_written.as_ref().map(|(_, t)| t.as_str()), Some("a | b"));
        assert!(st.pending.is_none());
    }

    #[test]
    fn clock_is_a_time_of_day() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert!(c.chars().enumerate().all(|(i, ch)| if i == 2 || i == 5 { ch == ':' } else { ch.is_ascii_digit() }));
    }
}
