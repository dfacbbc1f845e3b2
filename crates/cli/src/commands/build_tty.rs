//! `berth build --progress tty` (the default on a terminal): a live view in
//! BuildKit's spirit. Finished steps scroll up as permanent lines
//! (`#5 [app 3/7] COPY . /src  DONE 0.21s`); below them, every running step
//! shows its elapsed time (ticking) and the last lines of its output. Plain
//! mode prints the same information as one line per event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_build::exec::Event;

/// Output lines kept per running step.
const TAIL: usize = 4;

struct Running {
    id: usize,
    header: String,
    started: Instant,
    cached: bool,
    tail: Vec<String>,
}

struct State {
    running: Vec<Running>,
    /// Lines of the live area currently on screen.
    drawn: usize,
    width: usize,
}

impl State {
    fn render(&mut self, out: &mut impl std::io::Write, permanent: &[String]) {
        // Back to the top of the live area, and clear it.
        if self.drawn > 0 {
            let _ = write!(out, "\r\x1b[{}A\x1b[J", self.drawn);
        } else {
            let _ = write!(out, "\r\x1b[J");
        }
        for line in permanent {
            let _ = writeln!(out, "{}", fit(line, self.width));
        }
        let mut n = 0;
        for r in &self.running {
            let secs = r.started.elapsed().as_secs_f64();
            let head = format!("=> {}  {secs:.1}s", r.header);
            let _ = writeln!(out, "{}", fit(&head, self.width));
            n += 1;
            for l in &r.tail {
                let _ = writeln!(out, "\x1b[2m{}\x1b[0m", fit(&format!("   {l}"), self.width));
                n += 1;
            }
        }
        self.drawn = n;
        let _ = out.flush();
    }
}

/// Cuts a line to the terminal's width (by characters; escapes are not
/// counted because only whole lines are styled).
fn fit(line: &str, width: usize) -> String {
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= width {
        clean
    } else {
        clean
            .chars()
            .take(width.saturating_sub(1))
            .collect::<String>()
            + "…"
    }
}

/// The live view; [`TtyProgress::event`] takes events from any thread.
pub struct TtyProgress {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl TtyProgress {
    pub fn start() -> TtyProgress {
        let width = terminal_width().unwrap_or(80).max(20);
        let state = Arc::new(Mutex::new(State {
            running: Vec::new(),
            drawn: 0,
            width,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        // Redraws a few times a second so elapsed times tick.
        let ticker = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(150));
                    let mut st = state.lock().unwrap();
                    if !st.running.is_empty() {
                        st.render(&mut std::io::stderr().lock(), &[]);
                    }
                }
            })
        };
        TtyProgress {
            state,
            stop,
            ticker: Some(ticker),
        }
    }

    pub fn event(&self, e: Event) {
        let mut st = self.state.lock().unwrap();
        let mut permanent = Vec::new();
        match e {
            Event::Step {
                id,
                stage,
                index,
                total,
                text,
            } => st.running.push(Running {
                id,
                header: format!("#{id} [{stage} {index}/{total}] {text}"),
                started: Instant::now(),
                cached: false,
                tail: Vec::new(),
            }),
            Event::Cached { id } => {
                if let Some(r) = st.running.iter_mut().find(|r| r.id == id) {
                    r.cached = true;
                }
            }
            Event::Output { id, line } => {
                if let Some(r) = st.running.iter_mut().find(|r| r.id == id) {
                    r.tail.push(line);
                    if r.tail.len() > TAIL {
                        r.tail.remove(0);
                    }
                }
            }
            Event::Done { id, seconds } => {
                if let Some(at) = st.running.iter().position(|r| r.id == id) {
                    let r = st.running.remove(at);
                    permanent.push(if r.cached {
                        format!("{}  CACHED", r.header)
                    } else {
                        format!("{}  DONE {seconds:.2}s", r.header)
                    });
                }
            }
            _ => return,
        }
        st.render(&mut std::io::stderr().lock(), &permanent);
    }

    /// Stops the ticker and leaves finished lines on screen; steps still
    /// running (a failed build) are printed as they were.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        let mut st = self.state.lock().unwrap();
        let left: Vec<String> = st
            .running
            .drain(..)
            .map(|r| format!("{}  (interrupted)", r.header))
            .collect();
        st.render(&mut std::io::stderr().lock(), &left);
    }
}

impl Drop for TtyProgress {
    fn drop(&mut self) {
        if self.ticker.is_some() {
            self.finish();
        }
    }
}

fn terminal_width() -> Option<usize> {
    ratatui::crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
}
