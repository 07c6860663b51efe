//! Progress bars for long work, in one style across hone. Hidden when stderr is not a terminal or
//! when the caller asks for quiet, so logs and tests stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over input bytes with throughput and ETA; the message shows counts.
pub fn bytes_bar(total: u64, label: &str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(visible));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label:>9} [{{bar:30}}] {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} eta {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// A bar over steps; the message carries the stage's live numbers (loss, tokens/s).
pub fn steps_bar(total: u64, label: &str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(visible));
    bar.set_style(
        ProgressStyle::with_template(&format!("{label:>9} [{{bar:30}}] {{pos}}/{{len}} eta {{eta}} {{msg}}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn target(visible: bool) -> ProgressDrawTarget {
    if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }
}
