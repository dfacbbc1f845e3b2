//! `USER` resolution against a root filesystem's `/etc/passwd` and
//! `/etc/group`, with Docker's rules: names or numbers; a numeric uid need
//! not exist; the primary group comes from passwd unless a group is given;
//! supplementary groups are the groups that list the user by name, only
//! when no group is given (runc's rule: the primary group is not among them).

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of `/etc/group` that list the user.
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 || l.starts_with('#') {
            return None;
        }
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (`user[:group]`; empty = root) with the given file
/// contents (`None` when the file does not exist).
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = passwd.unwrap_or("");
    let group_text = group.unwrap_or("");
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == user)
                .ok_or_else(|| {
                    format!("unable to find user {user}: no matching entries in passwd file")
                })?,
        ),
    };
    let uid = match (&entry, user.parse::<u32>()) {
        (_, Ok(n)) => n,
        (Some(e), _) => e.uid,
        (None, Err(_)) => unreachable!("a name without an entry is an error above"),
    };
    let home = entry
        .as_ref()
        .map(|e| e.home.to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    let (gid, groups) = match grp {
        Some(g) if !g.is_empty() => {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => group_entries(group_text)
                    .find(|(name, _, _)| *name == g)
                    .map(|(_, gid, _)| gid)
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?,
            };
            (gid, Vec::new())
        }
        _ => {
            let gid = entry.as_ref().map_or(uid, |e| e.gid);
            let mut groups = Vec::new();
            if let Some(e) = &entry {
                for (_, g, members) in group_entries(group_text) {
                    if members.contains(&e.name) && !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
            (gid, groups)
        }
    };
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nbad:x:nope:1::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:app\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn names_numbers_and_groups() {
        assert_eq!(
            r("").unwrap(),
            ExecUser {
                uid: 0,
                gid: 0,
                groups: vec![10],
                home: "/root".into()
            }
        );
        assert_eq!(r("app").unwrap().groups, vec![10, 50]);
        assert_eq!(r("1000").unwrap().home, "/home/app");
        assert_eq!(
            r("app:staff").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 50,
                groups: vec![],
                home: "/home/app".into()
            }
        );
        assert_eq!(
            r("4242:7").unwrap(),
            ExecUser {
                uid: 4242,
                gid: 7,
                groups: vec![],
                home: "/".into()
            }
        );
        assert_eq!(r("4242").unwrap().gid, 4242);
        assert!(
            r("ghost")
                .unwrap_err()
                .contains("unable to find user ghost")
        );
        assert!(r("app:ghosts").unwrap_err().contains("group ghosts"));
        assert_eq!(resolve("0", None, None).unwrap().home, "/");
    }
}
