//! Parsing the host's resolv.conf the way upstream does (pkg/kubelet/network/dns
//! `parseResolvConf`): nameserver lines accumulate, the last search line wins, options lines
//! merge by option name.

/// Upstream refuses resolv.conf files larger than this.
pub const MAX_RESOLV_CONF_LENGTH: usize = 10 * (1 << 20);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parses resolv.conf content. The error lists the malformed lines (a `nameserver` line with
/// no address); upstream then rejects the whole file.
pub fn parse(content: &str) -> Result<ResolvConf, String> {
    let mut conf = ResolvConf::default();
    let mut errors = Vec::new();
    for line in content.split('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", server, ..] => conf.nameservers.push((*server).to_owned()),
            ["nameserver"] => errors.push("nameserver list is empty"),
            // Trailing dots are dropped so "a." and "a" count once against the search limits.
            ["search", domains @ ..] => {
                conf.searches = domains
                    .iter()
                    .filter(|d| **d != ".")
                    .map(|d| d.strip_suffix('.').unwrap_or(d).to_owned())
                    .collect();
            }
            ["options", opts @ ..] => merge_options(&mut conf.options, opts.iter().copied()),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(conf)
    } else {
        Err(errors.join(", "))
    }
}

/// Adds options, a later option replacing an earlier one of the same name (`ndots:2` replaces
/// `ndots:5`). Upstream goes through a Go map, so its order is unspecified; this keeps the
/// first position of each name.
pub fn merge_options<'a>(options: &mut Vec<String>, new: impl IntoIterator<Item = &'a str>) {
    for option in new {
        let name = option_name(option);
        match options.iter_mut().find(|o| option_name(o) == name) {
            Some(existing) => *existing = option.to_owned(),
            None => options.push(option.to_owned()),
        }
    }
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        let conf = parse(
            "# comment\nnameserver 10.0.0.1\n nameserver 10.0.0.2 # x\nsearch old.example\n\
             search a.example. . b.example\noptions ndots:2 rotate\noptions ndots:3\n; other\n",
        )
        .unwrap();
        assert_eq!(conf.nameservers, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(conf.searches, ["a.example", "b.example"]);
        assert_eq!(conf.options, ["ndots:3", "rotate"]);
    }

    #[test]
    fn empty_nameserver_is_an_error() {
        assert_eq!(
            parse("nameserver\n").unwrap_err(),
            "nameserver list is empty"
        );
    }

    #[test]
    fn empty_file_is_empty_config() {
        assert_eq!(parse("").unwrap(), ResolvConf::default());
    }
}
