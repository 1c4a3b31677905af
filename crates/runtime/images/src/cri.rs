//! The image as the store hands it out, and its CRI form.

use k8s_cri::v1 as cri;
use oci_spec::image::ImageConfiguration;

#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Compressed layers plus config, in bytes: what containerd reports.
    pub size: u64,
    pub config: ImageConfiguration,
    pub pinned: bool,
}

impl Image {
    pub fn to_cri(&self) -> cri::Image {
        let (uid, username) = user_of(
            self.config
                .config()
                .as_ref()
                .and_then(|c| c.user().as_deref()),
        );
        cri::Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            size: self.size,
            uid: uid.map(|value| cri::Int64Value { value }),
            username,
            spec: Some(cri::ImageSpec {
                image: self.id.clone(),
                ..Default::default()
            }),
            pinned: self.pinned,
        }
    }
}

/// CRI's reading of the config's `User` (`user`, `uid`, `user:group`, `uid:gid`): a numeric
/// user is the uid, anything else the username; the group never counts.
fn user_of(user: Option<&str>) -> (Option<i64>, String) {
    let user = user.unwrap_or("").split(':').next().unwrap_or("");
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_uid_or_name() {
        assert_eq!(user_of(None), (None, String::new()));
        assert_eq!(user_of(Some("")), (None, String::new()));
        assert_eq!(user_of(Some("1002")), (Some(1002), String::new()));
        assert_eq!(user_of(Some("0:0")), (Some(0), String::new()));
        assert_eq!(user_of(Some("nobody:nogroup")), (None, "nobody".into()));
    }
}
