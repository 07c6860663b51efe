//! Ctrl-C: the first press asks the training loop to stop after the current step (it then writes a
//! checkpoint, so the same command resumes); a second press exits at once.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide stop flag, with the Ctrl-C handler installed on first use.
pub fn stop_flag() -> Arc<AtomicBool> {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted again: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: stopping after this step and writing a checkpoint (Ctrl-C again to exit now)");
        });
        if let Err(e) = installed {
            tracing::warn!("Ctrl-C handler not installed: {e}");
        }
        flag
    })
    .clone()
}
