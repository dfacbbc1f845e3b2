//! The TUI driven in a real terminal: tmux runs `berth dive`, keys go in with
//! `send-keys` and the screen comes back with `capture-pane`. Needs tmux
//! (Debian package `tmux`, which CI installs).

mod common;
mod dive_util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{berth, berth_bin, ok};
use dive_util::*;

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let t = Tmux {
            socket: format!("berth-dive-test-{}", std::process::id()),
        };
        let status = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "dive",
                "-x",
                "80",
                "-y",
                "24",
                command,
            ])
            .status()
            .expect("tmux runs (install the Debian package tmux)");
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "dive"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "dive"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to 20 s) until the screen satisfies `pred`; returns it.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn tui_in_tmux_navigates_filters_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let archive = dir.path().join("multi.tar");
    write_docker_archive(&archive, "multi:1", &four_layers(), &FOUR_COMMANDS);
    ok(berth(&root).args(["load", "-i"]).arg(&archive));
    let command = format!(
        "BERTH_ROOT={} {} dive multi:1; echo berth-exited-$?; sleep 30",
        shell_quote(&root),
        shell_quote(Path::new(berth_bin()))
    );
    let t = Tmux::start(&command);
    let s = t.wait_for("the first frame", |s| s.contains("Files: layer 0"));
    assert!(s.contains("ADD rootfs.tar /"), "{s}");
    assert!(s.contains("└── big"), "{s}");
    // The whole 80x24 frame is used: the key bar is on the last line.
    assert!(s.lines().nth(23).unwrap_or("").contains("q quit"), "{s}");

    // Select layer 3 (rm -rf /usr/lib).
    t.keys(&["Down", "Down", "Down"]);
    let s = t.wait_for("layer 3", |s| s.contains("Files: layer 3 (this layer)"));
    assert!(s.contains("hides 5.0 kB"), "{s}");

    // Files pane, only changes: the deleted directory and its parents.
    t.keys(&["Tab", "c"]);
    let s = t.wait_for("changes only", |s| s.contains("changes only"));
    assert!(s.contains("└── lib") && s.contains("big"), "{s}");
    assert!(!s.contains("├── bin"), "unchanged paths are hidden:\n{s}");

    // Aggregated view from layer 0: /bin/app (chmod) shows up again.
    t.keys(&["a"]);
    let s = t.wait_for("aggregated", |s| s.contains("(aggregated)"));
    assert!(s.contains("app"), "{s}");

    // Filter by path.
    t.keys(&["c", "/", "c", "o", "n", "f"]);
    let s = t.wait_for("the filter", |s| s.contains("Filter: conf_"));
    t.keys(&["Enter"]);
    let s2 = t.wait_for("filtered tree", |s| {
        s.contains("/conf") && !s.contains("Filter:")
    });
    assert!(!s2.contains("big"), "filtered out:\n{s}\n{s2}");

    // Help, then quit; the terminal comes back.
    t.keys(&["?"]);
    t.wait_for("help", |s| s.contains("fold or unfold everything"));
    t.keys(&["Escape"]);
    t.wait_for("help closed", |s| !s.contains("fold or unfold everything"));
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("berth-exited-"));
    assert!(s.contains("berth-exited-0"), "{s}");
}
