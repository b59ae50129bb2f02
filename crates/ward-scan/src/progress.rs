//! Progress on large inputs: a bar on stderr while files are read, then a spinner while the rules
//! run.
//!
//! The bar is only drawn when stderr is a terminal and the input is large (see [`wanted`]), so
//! pipes, CI logs and tests never see it, and small scans never flicker. It counts bytes of the
//! named files (sizes are known before reading); standard input has no known size and is not
//! counted. Nothing but file names and counts is printed: never input text.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Files from which a scan counts as large, whatever their size.
pub(crate) const MANY_FILES: usize = 50;

/// Bytes from which a scan counts as large, whatever the file count (about 1,000 objects).
pub(crate) const MANY_BYTES: u64 = 4 * 1024 * 1024;

/// Whether to draw progress: on a terminal, for a large input, unless turned off.
pub(crate) fn wanted(enabled: bool, stderr_is_terminal: bool, files: usize, bytes: u64) -> bool {
    enabled && stderr_is_terminal && (files >= MANY_FILES || bytes >= MANY_BYTES)
}

/// A progress bar that may be hidden; every method is a no-op when it is.
pub(crate) struct Progress {
    bar: ProgressBar,
    files: usize,
    done: usize,
}

impl Progress {
    /// A bar over `bytes` in `files` files, drawn on stderr if [`wanted`].
    pub(crate) fn new(enabled: bool, files: usize, bytes: u64) -> Self {
        let show = wanted(enabled, std::io::stderr().is_terminal(), files, bytes);
        let bar = if show {
            ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} scanning [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}",
            )
            // The template is a constant that parses; keep a plain bar if it ever did not.
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            bar,
            files,
            done: 0,
        }
    }

    /// Marks `file` (of `len` bytes) as read, with `objects` objects found so far.
    pub(crate) fn file_done(&mut self, file: &Path, len: u64, objects: usize) {
        self.done += 1;
        // The message first: the increment draws, and the first draw may be the only one.
        self.bar.set_message(format!(
            "{}/{} files, {objects} objects ({})",
            self.done,
            self.files,
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        self.bar.inc(len);
    }

    /// Switches to a spinner while the rules run over `objects` objects.
    pub(crate) fn checking(&self, objects: usize) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} checking {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.bar.set_message(format!("{objects} objects"));
        self.bar.enable_steady_tick(Duration::from_millis(100));
    }

    /// Removes the bar, so the report starts on a clean line.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_inputs_on_a_terminal() {
        assert!(wanted(true, true, MANY_FILES, 0));
        assert!(wanted(true, true, 1, MANY_BYTES));
        assert!(!wanted(true, true, MANY_FILES - 1, MANY_BYTES - 1));
        assert!(!wanted(true, false, 10_000, 1 << 30), "not on a pipe");
        assert!(
            !wanted(false, true, 10_000, 1 << 30),
            "not with --no-progress"
        );
    }

    #[test]
    fn hidden_bar_is_inert() {
        // Tests run with stderr captured or piped: never a terminal here, so always hidden.
        let mut progress = Progress::new(true, 10_000, 1 << 30);
        if std::io::stderr().is_terminal() {
            return;
        }
        assert!(progress.bar.is_hidden());
        progress.file_done(Path::new("a.yaml"), 10, 1);
        progress.checking(1);
        progress.finish();
        assert_eq!(progress.done, 1);
    }
}
