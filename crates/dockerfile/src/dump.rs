//! BuildKit's node dump, as the PyPI package `dockerfile` exposes it.

use serde::Serialize;

use crate::ast::{Dockerfile, Instruction};

/// One instruction in the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpNode {
    /// The instruction name as written (null for an empty logical line).
    pub cmd: Option<String>,
    /// ONBUILD's inner instruction name.
    pub sub_cmd: Option<String>,
    /// Exec (JSON) form.
    pub json: bool,
    /// The logical line, plus heredoc bodies and terminators.
    pub original: Option<String>,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line.
    pub end_line: usize,
    /// Raw flags.
    pub flags: Vec<String>,
    /// Argument words.
    pub value: Vec<String>,
    /// Heredocs.
    pub heredocs: Vec<DumpHeredoc>,
}

/// A heredoc in the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpHeredoc {
    /// Delimiter.
    pub name: String,
    /// Body.
    pub content: String,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn node(inst: &Instruction) -> DumpNode {
    let inner = inst.onbuild.as_deref().unwrap_or(inst);
    let mut original = inst.original.clone();
    if !inner.heredocs.is_empty() {
        original.push('\n');
        for h in &inner.heredocs {
            original.push_str(&h.content);
            original.push_str(&h.name);
            original.push('\n');
        }
    }
    DumpNode {
        cmd: non_empty(&inst.keyword),
        sub_cmd: inst.onbuild.as_deref().and_then(|i| non_empty(&i.keyword)),
        json: inner.json,
        original: non_empty(&original),
        start_line: inst.start_line,
        end_line: inst.end_line,
        flags: inst.flags.iter().map(|f| f.raw.clone()).collect(),
        value: match &inst.onbuild {
            // A nested ONBUILD's own node list is one empty word.
            Some(i) if i.onbuild.is_some() => vec![String::new()],
            _ => inner.args.iter().map(|w| w.value.clone()).collect(),
        },
        heredocs: inner
            .heredocs
            .iter()
            .map(|h| DumpHeredoc {
                name: h.name.clone(),
                content: h.content.clone(),
            })
            .collect(),
    }
}

/// The dump of every instruction, in order.
pub fn dump(df: &Dockerfile) -> Vec<DumpNode> {
    df.instructions.iter().map(node).collect()
}
