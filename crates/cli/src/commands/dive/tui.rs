//! The interactive explorer: a layers pane (size, command), the file tree of
//! the selected layer with added/modified/removed colouring, and details of
//! the layer, the image and the selected file. It draws what
//! `berth-inspect` computed; state changes rebuild the visible rows, drawing
//! only reads them, so frames can be snapshot-tested with `TestBackend`.

use std::collections::HashSet;

use berth_inspect::fs::{FsTree, Status};
use berth_inspect::layer::NodeId;
use berth_inspect::source::ImageInfo;
use berth_inspect::{Analysis, Kind};
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::human_bytes;

/// Runs the explorer until the user quits.
pub fn run(analysis: &Analysis, _info: &ImageInfo) -> anyhow::Result<()> {
    let mut app = App::new(analysis);
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        loop {
            terminal.draw(|f| draw(f, &mut app))?;
            if let Event::Key(key) = event::read()?
                && key.kind != KeyEventKind::Release
                && !app.key(key)
            {
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pane {
    Layers,
    Tree,
}

/// One visible line of the file tree.
#[derive(Debug, Clone)]
struct Row {
    id: NodeId,
    prefix: String,
}

pub(crate) struct App<'a> {
    analysis: &'a Analysis,
    pub(crate) layer: usize,
    pub(crate) focus: Pane,
    /// Aggregated view (changes since the first layer) instead of this layer's.
    pub(crate) aggregated: bool,
    /// Hide unchanged paths.
    pub(crate) only_changes: bool,
    pub(crate) filter: String,
    pub(crate) editing_filter: bool,
    pub(crate) help: bool,
    view: FsTree,
    /// Per node: it or something below it changed (parents of changes are
    /// drawn as modified, as dive draws them).
    changed: Vec<bool>,
    collapsed: HashSet<NodeId>,
    rows: Vec<Row>,
    pub(crate) cursor: usize,
    scroll: usize,
    layer_scroll: usize,
    tree_height: usize,
}

impl<'a> App<'a> {
    pub(crate) fn new(analysis: &'a Analysis) -> App<'a> {
        let mut app = App {
            analysis,
            layer: 0,
            focus: Pane::Layers,
            aggregated: false,
            only_changes: false,
            filter: String::new(),
            editing_filter: false,
            help: false,
            view: FsTree::default(),
            changed: Vec::new(),
            collapsed: HashSet::new(),
            rows: Vec::new(),
            cursor: 0,
            scroll: 0,
            layer_scroll: 0,
            tree_height: 10,
        };
        app.rebuild_view();
        app
    }

    fn rebuild_view(&mut self) {
        if self.analysis.trees.is_empty() {
            return;
        }
        self.view = if self.aggregated {
            self.analysis.aggregated_view(self.layer)
        } else {
            self.analysis.view(self.layer)
        };
        self.changed = self.view.changed_below();
        self.collapsed.clear();
        self.cursor = 0;
        self.scroll = 0;
        self.rebuild_rows();
    }

    /// Recomputes the visible rows from the view, filters and collapsed set.
    fn rebuild_rows(&mut self) {
        let v = &self.view;
        let filter = self.filter.to_lowercase();
        // keep[id]: the node passes the filters, or something below it does.
        let order = v.walk();
        let mut keep = vec![false; order.iter().map(|&i| i as usize + 1).max().unwrap_or(1)];
        for &id in order.iter().rev() {
            let n = v.node(id);
            let status_ok = !self.only_changes || n.status != Status::Unchanged;
            let text_ok = filter.is_empty() || v.path(id).to_lowercase().contains(&filter);
            if status_ok && text_ok {
                keep[id as usize] = true;
            }
            if keep[id as usize] && n.parent != 0 {
                keep[n.parent as usize] = true;
            }
        }
        let mut rows = Vec::new();
        emit(v, v.root(), "", &keep, &self.collapsed, &mut rows);
        self.rows = rows;
        if self.cursor >= self.rows.len() {
            self.cursor = self.rows.len().saturating_sub(1);
        }
    }

    fn select_layer(&mut self, layer: usize) {
        let layer = layer.min(self.analysis.layers.len().saturating_sub(1));
        if layer != self.layer {
            self.layer = layer;
            self.rebuild_view();
        }
    }

    fn move_cursor(&mut self, delta: isize) {
        match self.focus {
            Pane::Layers => {
                let l = self.layer as isize + delta;
                self.select_layer(l.max(0) as usize);
            }
            Pane::Tree => {
                let max = self.rows.len().saturating_sub(1) as isize;
                self.cursor = (self.cursor as isize + delta).clamp(0, max) as usize;
            }
        }
    }

    fn toggle_collapse(&mut self) {
        let Some(row) = self.rows.get(self.cursor) else {
            return;
        };
        let id = row.id;
        if self.view.node(id).children.is_empty() {
            return;
        }
        if !self.collapsed.remove(&id) {
            self.collapsed.insert(id);
        }
        self.rebuild_rows();
    }

    fn toggle_collapse_all(&mut self) {
        if self.collapsed.is_empty() {
            for id in self.view.walk() {
                if !self.view.node(id).children.is_empty() {
                    self.collapsed.insert(id);
                }
            }
        } else {
            self.collapsed.clear();
        }
        self.cursor = 0;
        self.rebuild_rows();
    }

    /// Handles a key; returns false to quit.
    pub(crate) fn key(&mut self, key: KeyEvent) -> bool {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return false;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                    self.rebuild_rows();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                    self.rebuild_rows();
                }
                KeyCode::Char(c) => {
                    self.filter.push(c);
                    self.cursor = 0;
                    self.rebuild_rows();
                }
                _ => {}
            }
            return true;
        }
        if self.help {
            self.help = false;
            return !matches!(key.code, KeyCode::Char('q'));
        }
        match key.code {
            KeyCode::Char('q') => return false,
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.rebuild_rows();
            }
            KeyCode::Esc => return false,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Pane::Layers => Pane::Tree,
                    Pane::Tree => Pane::Layers,
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-(self.tree_height as isize)),
            KeyCode::PageDown => self.move_cursor(self.tree_height as isize),
            KeyCode::Home => self.move_cursor(isize::MIN / 2),
            KeyCode::End => self.move_cursor(isize::MAX / 2),
            KeyCode::Char(' ') | KeyCode::Enter if self.focus == Pane::Tree => {
                self.toggle_collapse()
            }
            KeyCode::Char('x') => self.toggle_collapse_all(),
            KeyCode::Char('/') => {
                self.editing_filter = true;
                self.focus = Pane::Tree;
            }
            KeyCode::Char('c') => {
                self.only_changes = !self.only_changes;
                self.cursor = 0;
                self.rebuild_rows();
            }
            KeyCode::Char('a') => {
                self.aggregated = !self.aggregated;
                self.rebuild_view();
            }
            KeyCode::Char('?') => self.help = true,
            _ => {}
        }
        true
    }

    fn selected(&self) -> Option<NodeId> {
        self.rows.get(self.cursor).map(|r| r.id)
    }
}

/// Appends the visible rows below `id`, depth first, with tree-drawing prefixes.
fn emit(
    v: &FsTree,
    id: NodeId,
    prefix: &str,
    keep: &[bool],
    collapsed: &HashSet<NodeId>,
    rows: &mut Vec<Row>,
) {
    let kids: Vec<NodeId> = v
        .node(id)
        .children
        .values()
        .copied()
        .filter(|&c| keep.get(c as usize).copied().unwrap_or(false))
        .collect();
    for (i, &c) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        rows.push(Row {
            id: c,
            prefix: format!("{prefix}{}", if last { "└── " } else { "├── " }),
        });
        if !collapsed.contains(&c) {
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            emit(v, c, &deeper, keep, collapsed, rows);
        }
    }
}

fn status_style(s: Status) -> Style {
    match s {
        Status::Added => Style::default().fg(Color::Green),
        Status::Modified => Style::default().fg(Color::Yellow),
        Status::Removed => Style::default().fg(Color::Red),
        Status::Unchanged => Style::default(),
    }
}

/// `drwxr-xr-x`-style permissions.
fn mode_string(kind: Option<Kind>, mode: u32) -> String {
    let t = match kind {
        None | Some(Kind::Dir) => 'd',
        Some(Kind::Symlink) => 'l',
        Some(Kind::Char) => 'c',
        Some(Kind::Block) => 'b',
        Some(Kind::Fifo) => 'p',
        _ => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn block(title: &str, focused: bool) -> Block<'_> {
    let style = if focused {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), style))
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else if v.is_nan() {
        "n/a".into()
    } else {
        "inf".into()
    }
}

/// Draws one frame.
pub(crate) fn draw(f: &mut Frame<'_>, app: &mut App<'_>) {
    let [main, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(f.area());
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main);
    let [layers_area, layer_area, image_area, file_area] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
    ])
    .areas(left);
    draw_layers(f, app, layers_area);
    draw_layer_details(f, app, layer_area);
    draw_image_details(f, app, image_area);
    draw_file_details(f, app, file_area);
    draw_tree(f, app, right);
    let bar = if app.editing_filter {
        Line::from(vec![
            Span::styled("Filter: ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{}_", app.filter)),
            Span::raw("  (Enter: keep, Esc: clear)"),
        ])
    } else {
        Line::from(
            "Tab pane  ↑↓ move  Space fold  / filter  c changes  a aggregated  ? help  q quit",
        )
    };
    f.render_widget(
        Paragraph::new(bar).style(Style::default().add_modifier(Modifier::REVERSED)),
        status,
    );
    if app.help {
        draw_help(f, main);
    }
}

fn draw_layers(f: &mut Frame<'_>, app: &mut App<'_>, area: Rect) {
    let inner_h = area.height.saturating_sub(3) as usize;
    if app.layer < app.layer_scroll {
        app.layer_scroll = app.layer;
    } else if inner_h > 0 && app.layer >= app.layer_scroll + inner_h {
        app.layer_scroll = app.layer + 1 - inner_h;
    }
    let mut lines = vec![Line::styled(
        format!("{:>3} {:>8}  Command", "#", "Size"),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for l in app
        .analysis
        .layers
        .iter()
        .skip(app.layer_scroll)
        .take(inner_h)
    {
        let cmd = l.meta.created_by.trim();
        let cmd = cmd.strip_prefix("/bin/sh -c ").unwrap_or(cmd);
        let cmd = cmd.strip_prefix("#(nop) ").unwrap_or(cmd);
        let text = format!("{:>3} {:>8}  {}", l.index, human_bytes(l.size), cmd);
        let mut style = Style::default();
        if l.index == app.layer {
            style = style.add_modifier(Modifier::REVERSED);
            if app.focus != Pane::Layers {
                style = style.fg(Color::Gray);
            }
        }
        lines.push(Line::styled(text, style));
    }
    f.render_widget(
        Paragraph::new(lines).block(block("Layers", app.focus == Pane::Layers)),
        area,
    );
}

fn draw_layer_details(f: &mut Frame<'_>, app: &App<'_>, area: Rect) {
    let Some(l) = app.analysis.layers.get(app.layer) else {
        f.render_widget(Paragraph::new("").block(block("Layer", false)), area);
        return;
    };
    let digest = l.meta.digest.as_deref().unwrap_or("-");
    let digest: String = digest.chars().take(19).collect();
    let c = &l.changes;
    let lines = vec![
        Line::from(vec![
            Span::raw(format!("{digest} ")),
            Span::styled(format!("+{}", c.added), status_style(Status::Added)),
            Span::raw(" "),
            Span::styled(format!("~{}", c.modified), status_style(Status::Modified)),
            Span::raw(" "),
            Span::styled(format!("-{}", c.removed), status_style(Status::Removed)),
        ]),
        Line::from(format!(
            "{}  hides {}",
            if l.user { "user layer" } else { "base layer" },
            human_bytes(c.hidden_bytes)
        )),
    ];
    f.render_widget(
        Paragraph::new(lines).block(block(&format!("Layer {}", l.index), false)),
        area,
    );
}

fn draw_image_details(f: &mut Frame<'_>, app: &App<'_>, area: Rect) {
    let (d, b) = (&app.analysis.dive, &app.analysis.berth);
    let lines = vec![
        Line::styled(
            format!("{:<5} {:>6} {:>7} {:>6}", "", "eff", "waste", "user"),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::from(format!(
            "{:<5} {:>6} {:>7} {:>6}",
            "dive",
            pct(d.efficiency),
            human_bytes(d.wasted_bytes),
            pct(d.user_wasted_percent)
        )),
        Line::from(format!(
            "{:<5} {:>6} {:>7} {:>6}",
            "berth",
            pct(b.efficiency),
            human_bytes(b.wasted_bytes),
            pct(b.user_wasted_percent)
        )),
        Line::from(format!(
            "chmod-only {} del {}",
            human_bytes(b.metadata_only_bytes),
            human_bytes(b.deleted_bytes)
        )),
    ];
    f.render_widget(Paragraph::new(lines).block(block("Image", false)), area);
}

fn draw_file_details(f: &mut Frame<'_>, app: &App<'_>, area: Rect) {
    let Some(id) = app.selected() else {
        f.render_widget(Paragraph::new("").block(block("File", false)), area);
        return;
    };
    let v = &app.view;
    let n = v.node(id);
    let kind = n.entry.as_ref().map(|e| e.kind);
    let (mode, uid, gid) = n
        .entry
        .as_ref()
        .map_or((0o755, 0, 0), |e| (e.mode, e.uid, e.gid));
    let size = if n.is_dir() {
        v.visible_size(id)
    } else {
        n.size()
    };
    let mut status = match n.status {
        Status::Added => "added".to_owned(),
        Status::Removed => "removed".to_owned(),
        Status::Unchanged => "unchanged".to_owned(),
        Status::Modified => {
            let c = n.change;
            let mut what = Vec::new();
            if c.content {
                what.push("content");
            }
            if c.mode {
                what.push("mode");
            }
            if c.owner {
                what.push("owner");
            }
            if what.is_empty() {
                "identical copy".to_owned()
            } else {
                format!("modified: {}", what.join(", "))
            }
        }
    };
    status.push_str(&format!(" (from layer {})", n.layer));
    let mut what = kind.map_or("directory", Kind::name).to_owned();
    if let Some(link) = n.entry.as_ref().and_then(|e| e.link.as_deref()) {
        what.push_str(&format!(" → {link}"));
    }
    let lines = vec![
        Line::from(v.path(id)),
        Line::from(format!(
            "{} {uid}:{gid} {}",
            mode_string(kind, mode),
            human_bytes(size),
        )),
        Line::from(what),
        Line::styled(status, status_style(n.status)),
    ];
    f.render_widget(Paragraph::new(lines).block(block("File", false)), area);
}

fn draw_tree(f: &mut Frame<'_>, app: &mut App<'_>, area: Rect) {
    let mode = if app.aggregated {
        "aggregated"
    } else {
        "this layer"
    };
    let mut title = format!("Files: layer {} ({mode})", app.layer);
    if app.only_changes {
        title.push_str(" changes only");
    }
    if !app.filter.is_empty() {
        title.push_str(&format!(" /{}", app.filter));
    }
    let h = area.height.saturating_sub(3) as usize;
    app.tree_height = h.max(1);
    if app.cursor < app.scroll {
        app.scroll = app.cursor;
    } else if h > 0 && app.cursor >= app.scroll + h {
        app.scroll = app.cursor + 1 - h;
    }
    let mut lines = vec![Line::styled(
        format!("{:<10} {:>7} {:>7}  Name", "Mode", "Owner", "Size"),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for (i, row) in app.rows.iter().enumerate().skip(app.scroll).take(h) {
        let v = &app.view;
        let n = v.node(row.id);
        let kind = n.entry.as_ref().map(|e| e.kind);
        let (mode, uid, gid) = n
            .entry
            .as_ref()
            .map_or((0o755, 0, 0), |e| (e.mode, e.uid, e.gid));
        let size = if n.is_dir() {
            v.visible_size(row.id)
        } else {
            n.size()
        };
        let fold = if app.collapsed.contains(&row.id) {
            "⊕ "
        } else {
            ""
        };
        let mut name = format!("{}{fold}{}", row.prefix, n.name);
        if let Some(link) = n.entry.as_ref().and_then(|e| e.link.as_deref()) {
            name.push_str(&format!(" → {link}"));
        }
        let text = format!(
            "{:<10} {:>7} {:>7}  {name}",
            mode_string(kind, mode),
            format!("{uid}:{gid}"),
            human_bytes(size)
        );
        let mut style = status_style(n.status);
        if n.status == Status::Unchanged && app.changed.get(row.id as usize) == Some(&true) {
            style = status_style(Status::Modified);
        }
        if i == app.cursor && app.focus == Pane::Tree {
            style = style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::styled(text, style));
    }
    if app.rows.is_empty() {
        lines.push(Line::from("(nothing to show)"));
    }
    f.render_widget(
        Paragraph::new(lines).block(block(&title, app.focus == Pane::Tree)),
        area,
    );
}

fn draw_help(f: &mut Frame<'_>, area: Rect) {
    let text = [
        "Tab        switch between layers and files",
        "↑ ↓ j k    move (in layers: select a layer)",
        "PgUp PgDn  page; Home End: first, last",
        "Space      fold or unfold a directory",
        "x          fold or unfold everything",
        "/          filter paths (Enter keeps, Esc clears)",
        "c          show only changes",
        "a          this layer / aggregated changes",
        "?          this help;  q Esc  quit",
        "",
        "green added  yellow modified  red removed",
    ];
    let w = 54.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
            .block(block("Keys", true)),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_inspect::analysis::{ImageLayers, LayerMeta, UserLayers};
    use berth_inspect::{LayerTree, analyze};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    fn tar(entries: &[(&str, usize, u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, size, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_mode(*mode);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            } else {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size as u64);
                b.append_data(&mut h, path, &vec![b'z'; *size][..]).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// The image of the CLI tests (`dive_util::four_layers`).
    fn analysis() -> Analysis {
        let layers = [
            (
                tar(&[
                    ("etc/", 0, 0o755),
                    ("etc/conf", 1000, 0o644),
                    ("usr/", 0, 0o755),
                    ("usr/lib/", 0, 0o755),
                    ("usr/lib/big", 5000, 0o644),
                    ("bin/app", 2000, 0o644),
                ]),
                "ADD rootfs.tar /",
            ),
            (
                tar(&[("etc/", 0, 0o755), ("etc/conf", 1000, 0o644)]),
                "COPY conf /etc/conf",
            ),
            (tar(&[("bin/app", 2000, 0o755)]), "RUN chmod +x /bin/app"),
            (tar(&[("usr/.wh.lib", 0, 0o644)]), "RUN rm -rf /usr/lib"),
        ];
        analyze(ImageLayers {
            name: "multi:1".into(),
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, (t, cmd))| {
                    (
                        LayerMeta {
                            digest: Some(format!("sha256:{i:064}")),
                            created_by: (*cmd).into(),
                            ..LayerMeta::default()
                        },
                        LayerTree::read(&t[..]).unwrap(),
                    )
                })
                .collect(),
            user_layers: UserLayers::all_but_first(),
        })
    }

    fn render(app: &mut App<'_>) -> Buffer {
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        t.backend().buffer().clone()
    }

    fn text(buf: &Buffer) -> String {
        let mut s = String::new();
        for y in 0..buf.area.height {
            let mut line = String::new();
            for x in 0..buf.area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }

    /// Compares with `testdata/dive/NAME.txt`; `BERTH_UPDATE_SNAPSHOTS=1` rewrites it.
    fn snapshot(name: &str, buf: &Buffer) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/dive")
            .join(format!("{name}.txt"));
        let got = text(buf);
        if std::env::var_os("BERTH_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (BERTH_UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        });
        assert_eq!(got, want, "frame differs from {}", path.display());
    }

    fn press(app: &mut App<'_>, code: KeyCode) -> bool {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// The row of the frame whose text contains `needle`.
    fn row_of(buf: &Buffer, needle: &str) -> u16 {
        let t = text(buf);
        t.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in frame:\n{t}")) as u16
    }

    fn fg_at(buf: &Buffer, needle: &str) -> Color {
        let y = row_of(buf, needle);
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_owned())
            .collect();
        let byte = line.find(needle).unwrap();
        let x = line[..byte].chars().count() as u16;
        buf[(x, y)].fg
    }

    #[test]
    fn first_frame_at_80x24() {
        let a = analysis();
        let mut app = App::new(&a);
        snapshot("tui-layer0", &render(&mut app));
    }

    #[test]
    fn layer_changes_are_coloured() {
        let a = analysis();
        let mut app = App::new(&a);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.layer, 2);
        let buf = render(&mut app);
        snapshot("tui-layer2", &buf);
        // chmod-only: yellow, and the details say so once selected.
        assert_eq!(fg_at(&buf, "app"), Color::Yellow);
        assert_eq!(fg_at(&buf, "conf"), Color::Reset);
        assert_eq!(
            fg_at(&buf, "├── bin"),
            Color::Yellow,
            "a parent of a change"
        );
        assert_eq!(fg_at(&buf, "├── etc"), Color::Reset);
        press(&mut app, KeyCode::Down);
        let buf = render(&mut app);
        assert_eq!(fg_at(&buf, "└── lib"), Color::Red);
        assert_eq!(fg_at(&buf, "big"), Color::Red);
        snapshot("tui-layer3", &buf);
    }

    #[test]
    fn tree_navigation_fold_filter_changes_and_aggregated() {
        let a = analysis();
        let mut app = App::new(&a);
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.focus, Pane::Tree);
        // Rows: bin, app, etc, conf, usr, lib, big.
        assert_eq!(app.rows.len(), 7);
        press(&mut app, KeyCode::Char(' '));
        assert_eq!(app.rows.len(), 6, "bin folded");
        assert!(text(&render(&mut app)).contains("⊕ bin"));
        press(&mut app, KeyCode::Char(' '));
        assert_eq!(app.rows.len(), 7);
        press(&mut app, KeyCode::Char('x'));
        assert_eq!(app.rows.len(), 3, "all folded");
        press(&mut app, KeyCode::Char('x'));
        // The file details follow the cursor.
        press(&mut app, KeyCode::Down);
        let buf = render(&mut app);
        assert!(text(&buf).contains("/bin/app"), "{}", text(&buf));
        assert!(
            text(&buf).contains("-rw-r--r-- 0:0 2.0 kB"),
            "{}",
            text(&buf)
        );
        assert!(text(&buf).contains("regular file"), "{}", text(&buf));
        // Filter.
        press(&mut app, KeyCode::Char('/'));
        for c in "big".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        assert!(text(&render(&mut app)).contains("Filter: big_"));
        press(&mut app, KeyCode::Enter);
        let names: Vec<String> = app
            .rows
            .iter()
            .map(|r| app.view.node(r.id).name.to_string())
            .collect();
        assert_eq!(names, ["usr", "lib", "big"]);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.rows.len(), 7);
        // Only changes, on layer 1: /etc/conf (identical copy) and its parent.
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char('c'));
        let names: Vec<String> = app
            .rows
            .iter()
            .map(|r| app.view.node(r.id).name.to_string())
            .collect();
        assert_eq!(names, ["etc", "conf"]);
        // Aggregated at layer 3: /bin/app modified, /usr/lib removed since layer 0.
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char('a'));
        assert!(app.aggregated);
        let buf = render(&mut app);
        assert!(text(&buf).contains("Files: layer 3 (aggregated) changes only"));
        assert_eq!(fg_at(&buf, "app"), Color::Yellow);
        assert_eq!(fg_at(&buf, "big"), Color::Red);
        let names: Vec<String> = app
            .rows
            .iter()
            .map(|r| app.view.node(r.id).name.to_string())
            .collect();
        assert_eq!(
            names,
            ["bin", "app", "usr", "lib", "big"],
            "/etc/conf is unchanged since layer 0"
        );
        // Help, then quit.
        press(&mut app, KeyCode::Char('?'));
        assert!(text(&render(&mut app)).contains("fold or unfold everything"));
        assert!(press(&mut app, KeyCode::Char('j')), "a key closes the help");
        assert!(!app.help);
        assert!(!press(&mut app, KeyCode::Char('q')));
    }

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(Some(Kind::File), 0o644), "-rw-r--r--");
        assert_eq!(mode_string(None, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(Some(Kind::Symlink), 0o777), "lrwxrwxrwx");
    }
}
