//! `--change` instructions for `berth import`, as `docker import -c` accepts.
//!
//! Only config-changing instructions are allowed. Shell-form CMD and
//! ENTRYPOINT are wrapped in `/bin/sh -c` as Docker does.

use anyhow::{Context as _, bail};
use berth_oci::RunConfig;

fn json_or_shell(rest: &str) -> anyhow::Result<Vec<String>> {
    let t = rest.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return Ok(v);
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), t.to_owned()])
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_owned()
    } else {
        s.to_owned()
    }
}

/// `k=v k2=v2` or legacy `k v`.
fn pairs(rest: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rest = rest.trim();
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .context("expected KEY=VALUE or KEY VALUE")?;
        return Ok(vec![(k.to_owned(), unquote(v))]);
    }
    let mut out = Vec::new();
    for word in rest.split_whitespace() {
        let (k, v) = word.split_once('=').context("expected KEY=VALUE")?;
        out.push((k.to_owned(), unquote(v)));
    }
    Ok(out)
}

/// Applies one instruction to `config`.
pub fn apply(config: &mut RunConfig, change: &str) -> anyhow::Result<()> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    match word.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(json_or_shell(rest)?),
        "ENTRYPOINT" => config.entrypoint = Some(json_or_shell(rest)?),
        "SHELL" => {
            config.shell =
                Some(serde_json::from_str(rest.trim()).context("SHELL needs a JSON array")?)
        }
        "WORKDIR" => config.working_dir = Some(unquote(rest)),
        "USER" => config.user = Some(unquote(rest)),
        "STOPSIGNAL" => config.stop_signal = Some(unquote(rest)),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs(rest)? {
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs(rest)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_owned()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = config.volumes.get_or_insert_with(Default::default);
            let list: Vec<String> = serde_json::from_str(rest.trim())
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        "" => bail!("empty instruction"),
        other => bail!(
            "{other} is not allowed in --change (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker_import() {
        let mut c = RunConfig::default();
        apply(&mut c, r#"CMD ["sh"]"#).unwrap();
        apply(&mut c, "ENTRYPOINT echo hi").unwrap();
        apply(&mut c, "ENV PATH=/bin:/usr/bin A=1").unwrap();
        apply(&mut c, "ENV A 2").unwrap();
        apply(&mut c, "EXPOSE 80 53/udp").unwrap();
        apply(&mut c, "WORKDIR /work").unwrap();
        assert_eq!(c.cmd.unwrap(), ["sh"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env.unwrap(), ["PATH=/bin:/usr/bin", "A=2"]);
        assert!(c.exposed_ports.unwrap().contains_key("53/udp"));
        assert_eq!(c.working_dir.as_deref(), Some("/work"));
        assert!(apply(&mut RunConfig::default(), "RUN true").is_err());
    }
}
