//! `berth build` on a terminal (driven in tmux): running steps are shown
//! live with their last output lines, finished steps stay as permanent lines,
//! and the live area is gone when the build ends.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{berth_bin, store_with_busybox};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "build"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded, not a timing assertion) until the screen satisfies `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn live_view_shows_running_steps_and_their_output_then_clears() {
    let root = store_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("a"), "a\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\n\
         RUN for i in $(seq 1 30); do echo out-$i; sleep 0.1; done\n\
         COPY a /a\n",
    )
    .unwrap();
    let command = format!(
        "{} --root {} build -t tty:1 {}; echo BUILD-EXIT-$?; sleep 60",
        berth_bin(),
        root.path().display(),
        ctx.path().display()
    );
    let t = Tmux {
        socket: format!("berth-build-tty-{}", std::process::id()),
    };
    let ok = t
        .cmd()
        .args(["new-session", "-d", "-s", "build", "-x", "100", "-y", "30"])
        .arg(&command)
        .status()
        .expect("tmux runs (scripts/install-test-deps.sh installs it)");
    assert!(ok.success());

    // While the RUN step runs: it is shown as running, with its latest
    // output lines (a bounded tail, not the whole output).
    let out_line =
        |l: &str| -> Option<u32> { l.trim_start().strip_prefix("out-")?.trim().parse().ok() };
    let mid = t.wait_for("the running RUN step with output", |s| {
        s.contains("=> #2 [stage-0 2/3] RUN")
            && s.lines().any(|l| out_line(l).is_some_and(|n| n >= 6))
    });
    let shown = mid.lines().filter(|l| out_line(l).is_some()).count();
    assert!(
        (1..=4).contains(&shown),
        "a tail of at most 4 lines:\n{mid}"
    );
    assert!(
        mid.contains("#1 [stage-0 1/3] FROM busybox:latest"),
        "finished steps stay on screen:\n{mid}"
    );

    // At the end: permanent lines for every step, no live area left.
    let end = t.wait_for("the end of the build", |s| s.contains("BUILD-EXIT-"));
    assert!(end.contains("BUILD-EXIT-0"), "{end}");
    assert!(
        end.lines()
            .any(|l| l.starts_with("#2 [stage-0 2/3] RUN") && l.contains("DONE")),
        "{end}"
    );
    assert!(
        end.lines()
            .any(|l| l.starts_with("#3 [stage-0 3/3] COPY a /a") && l.contains("DONE")),
        "{end}"
    );
    assert!(!end.contains("=> #"), "the live area is cleared:\n{end}");
    assert!(
        !end.lines().any(|l| out_line(l).is_some()),
        "output tails are not left behind:\n{end}"
    );
    assert!(end.contains("built in"), "{end}");
}
