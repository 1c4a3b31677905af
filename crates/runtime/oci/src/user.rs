//! The container's user and groups, resolved from the image's /etc/passwd and /etc/group the way
//! containerd does it (oci.WithUser, oci.WithAdditionalGIDs and the CRI plugin's merging).

use crate::SpecError;
use crate::rootfs::read_in_root;
use k8s_cri::v1::LinuxContainerSecurityContext;
use std::collections::BTreeSet;
use std::path::Path;

/// The process identity for the OCI spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Sorted, without duplicates, always holding the primary gid (as containerd does).
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// runc refuses ids above i32::MAX; containerd checks the same bound up front.
const MAX_ID: u64 = i32::MAX as u64;

/// Resolves the identity: the CRI security context first (run_as_username, run_as_user,
/// run_as_group), else the image's USER; plus the groups that list the user as a member and the
/// CRI supplemental groups.
pub(crate) fn resolve(
    rootfs: &Path,
    security: Option<&LinuxContainerSecurityContext>,
    image_user: &str,
) -> Result<Identity, SpecError> {
    let run_as_username = security.map(|s| s.run_as_username.as_str()).unwrap_or("");
    let run_as_user = security
        .and_then(|s| s.run_as_user.as_ref())
        .map(|v| v.value);
    let run_as_group = security
        .and_then(|s| s.run_as_group.as_ref())
        .map(|v| v.value);
    let mut user = String::new();
    if let Some(uid) = run_as_user {
        user = uid.to_string();
    }
    if !run_as_username.is_empty() {
        user = run_as_username.to_string();
    }
    if let Some(gid) = run_as_group {
        if user.is_empty() {
            return Err(SpecError::User {
                user: format!(":{gid}"),
                reason: "run_as_group is set without run_as_user or run_as_username".into(),
            });
        }
        user = format!("{user}:{gid}");
    }
    if user.is_empty() {
        user = image_user.to_string();
    }
    let passwd = read_passwd(rootfs)?;
    let groups = read_group(rootfs)?;
    let (uid, gid) = if user.is_empty() {
        (0, 0)
    } else {
        parse_user(&user, passwd.as_deref(), groups.as_deref())?
    };

    // The user whose group memberships count: named by the same precedence, the image's USER
    // without its group part, or root.
    let member = if !run_as_username.is_empty() {
        run_as_username.to_string()
    } else if let Some(uid) = run_as_user {
        uid.to_string()
    } else if !image_user.is_empty() {
        image_user.split(':').next().unwrap_or("").to_string()
    } else {
        "0".to_string()
    };
    let mut gids = BTreeSet::from([gid]);
    gids.extend(member_gids(&member, passwd.as_deref(), groups.as_deref()));
    if let Some(sc) = security {
        for &g in &sc.supplemental_groups {
            gids.insert(check_id(g, "supplemental group", &user)?);
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids: gids.into_iter().collect(),
    })
}

/// "name", "uid", "uid:gid", "name:group" and the mixed forms, as oci.WithUser reads them.
fn parse_user(
    user: &str,
    passwd: Option<&[PasswdEntry]>,
    groups: Option<&[GroupEntry]>,
) -> Result<(u32, u32), SpecError> {
    let err = |reason: String| SpecError::User {
        user: user.to_string(),
        reason,
    };
    let parts: Vec<&str> = user.split(':').collect();
    match parts.as_slice() {
        [single] => match parse_id(single, user)? {
            // A uid not in /etc/passwd (or no /etc/passwd) runs with gid 0.
            Some(uid) => Ok(passwd
                .and_then(|p| p.iter().find(|e| e.uid == uid))
                .map_or((uid, 0), |e| (e.uid, e.gid))),
            None => find_user(single, passwd)
                .map(|e| (e.uid, e.gid))
                .ok_or_else(|| err(format!("no user {single:?} in the image's /etc/passwd"))),
        },
        [u, g] => {
            let uid = match parse_id(u, user)? {
                Some(uid) => uid,
                None => find_user(u, passwd)
                    .map(|e| e.uid)
                    .ok_or_else(|| err(format!("no user {u:?} in the image's /etc/passwd")))?,
            };
            let gid = match parse_id(g, user)? {
                Some(gid) => gid,
                None => groups
                    .and_then(|gs| gs.iter().find(|e| e.name == *g))
                    .map(|e| e.gid)
                    .ok_or_else(|| err(format!("no group {g:?} in the image's /etc/group")))?,
            };
            Ok((uid, gid))
        }
        _ => Err(err("expected USER, UID, USER:GROUP or UID:GID".into())),
    }
}

/// Some(id) for a number, None for a name; numbers out of range are errors, not names.
fn parse_id(text: &str, user: &str) -> Result<Option<u32>, SpecError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(v) if v <= MAX_ID => Ok(Some(v as u32)),
        _ => Err(SpecError::User {
            user: user.to_string(),
            reason: format!("id {text} is out of range (0..={MAX_ID})"),
        }),
    }
}

fn check_id(id: i64, what: &str, user: &str) -> Result<u32, SpecError> {
    if (0..=MAX_ID as i64).contains(&id) {
        Ok(id as u32)
    } else {
        Err(SpecError::User {
            user: user.to_string(),
            reason: format!("{what} {id} is out of range (0..={MAX_ID})"),
        })
    }
}

fn find_user<'a>(name: &str, passwd: Option<&'a [PasswdEntry]>) -> Option<&'a PasswdEntry> {
    passwd.and_then(|p| p.iter().find(|e| e.name == name))
}

/// Groups listing the user as a member (not the group named like the user: that one is its
/// primary group already, containerd skips it too).
fn member_gids(
    user: &str,
    passwd: Option<&[PasswdEntry]>,
    groups: Option<&[GroupEntry]>,
) -> Vec<u32> {
    let name = match user.parse::<u32>() {
        Ok(uid) => match passwd.and_then(|p| p.iter().find(|e| e.uid == uid)) {
            Some(e) => e.name.as_str(),
            None => return Vec::new(),
        },
        Err(_) => user,
    };
    groups
        .unwrap_or_default()
        .iter()
        .filter(|g| g.name != name && g.members.iter().any(|m| m == name))
        .map(|g| g.gid)
        .collect()
}

fn read_passwd(rootfs: &Path) -> Result<Option<Vec<PasswdEntry>>, SpecError> {
    Ok(read_in_root(rootfs, "etc/passwd")?.map(|text| {
        records(&text)
            .filter_map(|f| {
                Some(PasswdEntry {
                    name: f.first()?.to_string(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                })
            })
            .collect()
    }))
}

fn read_group(rootfs: &Path) -> Result<Option<Vec<GroupEntry>>, SpecError> {
    Ok(read_in_root(rootfs, "etc/group")?.map(|text| {
        records(&text)
            .filter_map(|f| {
                Some(GroupEntry {
                    name: f.first()?.to_string(),
                    gid: f.get(2)?.parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .map(str::trim)
                                .filter(|m| !m.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect()
    }))
}

/// Colon-separated records, skipping blank lines and comments.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}
