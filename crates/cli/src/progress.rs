//! Progress on stderr: a bar when stderr is a terminal, plain periodic lines
//! when it is not, nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    every: Duration,
    total: Option<u64>,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    /// `every`: how often a plain line is printed when stderr is not a terminal.
    pub(crate) fn new(quiet: bool, every: Duration, total: Option<u64>, done: u64) -> Self {
        let now = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = match total {
                Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if total.is_some() {
                "{bar:30} {pos}/{len} rows  {rate}  ETA {eta}  {msg}"
            } else {
                "{spinner} {pos} rows  {rate}  {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} rows/s", state.per_sec());
                    },
                ));
            }
            bar.set_position(done);
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            every,
            total,
            start: now,
            last_line: now,
        }
    }

    /// Reports `rows` done (including resumed ones), tokens and retries so far.
    pub(crate) fn update(&mut self, rows: u64, new_rows: u64, tokens: u64, retries: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
            bar.set_message(format!("{tokens} tokens, {retries} retries"));
        } else if self.plain && self.last_line.elapsed() >= self.every {
            self.last_line = Instant::now();
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            let rate = new_rows as f64 / secs;
            let (total, eta) = match self.total {
                Some(t) if t > 0 => {
                    let eta = if rate > 0.0 {
                        format!(", ETA {:.1} s", t.saturating_sub(rows) as f64 / rate)
                    } else {
                        String::new()
                    };
                    (
                        format!("/{t} rows ({:.1}%)", rows as f64 * 100.0 / t as f64),
                        eta,
                    )
                }
                _ => (" rows".to_owned(), String::new()),
            };
            eprintln!(
                "embed: {rows}{total}, {rate:.0} rows/s, {tokens} tokens, {retries} retries{eta}"
            );
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
