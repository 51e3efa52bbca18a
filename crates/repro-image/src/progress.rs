//! Progress bars on a terminal; silence otherwise (or with --quiet).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use repro_oci::Digest;
use repro_transport::copy::{BlobProgress, NoProgress, Progress};

pub struct Bars {
    multi: MultiProgress,
}

/// The progress reporter for this invocation.
pub fn reporter(quiet: bool) -> Box<dyn Progress> {
    if quiet || !std::io::stderr().is_terminal() {
        return Box::new(NoProgress);
    }
    Box::new(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
    })
}

struct Bar(ProgressBar);

impl BlobProgress for Bar {
    fn inc(&mut self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&mut self, skipped: bool) {
        if skipped {
            self.0.set_message("already present");
        }
        self.0.finish();
    }
}

impl Progress for Bars {
    fn start(&self, what: &str, digest: &Digest, size: Option<u64>) -> Box<dyn BlobProgress> {
        let pb = match size {
            Some(s) => ProgressBar::new(s),
            None => ProgressBar::no_length(),
        };
        let style = ProgressStyle::with_template(
            "{prefix:.bold} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let pb = self.multi.add(pb.with_style(style));
        let short: String = digest.digest().chars().take(12).collect();
        let kind = if what.contains("config") {
            "config"
        } else {
            "blob"
        };
        pb.set_prefix(format!("{kind} {short}"));
        Box::new(Bar(pb))
    }
}
