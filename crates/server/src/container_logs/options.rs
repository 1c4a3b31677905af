//! The query of /containerLogs as upstream decodes it into a v1 PodLogOptions and validates it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LogOptions {
    pub(crate) follow: bool,
    pub(crate) previous: bool,
    pub(crate) timestamps: bool,
    pub(crate) tail_lines: Option<u64>,
    pub(crate) limit_bytes: Option<u64>,
    /// From sinceSeconds or sinceTime: entries before it are left out.
    pub(crate) since: Option<Timestamp>,
}

/// Upstream's answers, JSON-looking bodies included.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OptionsError {
    Decode,
    Invalid,
}

impl IntoResponse for OptionsError {
    fn into_response(self) -> Response {
        match self {
            OptionsError::Decode => (
                StatusCode::BAD_REQUEST,
                r#"{"message": "Unable to decode query."}"#,
            ),
            OptionsError::Invalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"message": "Invalid request."}"#,
            ),
        }
        .into_response()
    }
}

/// Go's strconv.ParseBool, which the parameter codec uses.
fn boolean(value: &str) -> Result<bool, OptionsError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(OptionsError::Decode),
    }
}

fn integer(value: &str) -> Result<i64, OptionsError> {
    value.parse().map_err(|_| OptionsError::Decode)
}

impl LogOptions {
    pub(crate) fn parse(query: &str) -> Result<LogOptions, OptionsError> {
        Self::parse_at(query, Timestamp::now())
    }

    fn parse_at(query: &str, now: Timestamp) -> Result<LogOptions, OptionsError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| OptionsError::Decode)?;
        let mut options = LogOptions::default();
        let (mut tail, mut limit, mut since_seconds, mut since_time) = (None, None, None, None);
        for (key, value) in &pairs {
            match key.as_str() {
                "follow" => options.follow = boolean(value)?,
                "previous" => options.previous = boolean(value)?,
                "timestamps" => options.timestamps = boolean(value)?,
                "tailLines" => tail = Some(integer(value)?),
                // The old "tail" parameter; "all" means no tail.
                "tail" if value == "all" => tail = None,
                "tail" => tail = Some(integer(value)?),
                "limitBytes" => limit = Some(integer(value)?),
                "sinceSeconds" => since_seconds = Some(integer(value)?),
                "sinceTime" => {
                    since_time = Some(
                        value
                            .parse::<Timestamp>()
                            .map_err(|_| OptionsError::Decode)?,
                    )
                }
                _ => {}
            }
        }
        options.tail_lines = tail
            .map(|n| u64::try_from(n).map_err(|_| OptionsError::Invalid))
            .transpose()?;
        options.limit_bytes = limit
            .map(|n| {
                u64::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(OptionsError::Invalid)
            })
            .transpose()?;
        options.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err(OptionsError::Invalid),
            (Some(seconds), None) if seconds < 1 => return Err(OptionsError::Invalid),
            (Some(seconds), None) => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(seconds))
                    .unwrap_or(Timestamp::MIN),
            ),
            (None, time) => time,
        };
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates_like_upstream() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let options = LogOptions::parse_at(
            "follow=true&tailLines=5&limitBytes=10&timestamps=1&sinceSeconds=60",
            now,
        )
        .unwrap();
        assert!(options.follow && options.timestamps && !options.previous);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.limit_bytes, Some(10));
        assert_eq!(options.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(
            LogOptions::parse_at("tail=all", now).unwrap().tail_lines,
            None
        );
        assert_eq!(
            LogOptions::parse_at("sinceTime=2024-01-01T00:00:30Z", now)
                .unwrap()
                .since,
            Some("2024-01-01T00:00:30Z".parse().unwrap())
        );
        assert_eq!(
            LogOptions::parse_at("tailLines=x", now),
            Err(OptionsError::Decode)
        );
        assert_eq!(
            LogOptions::parse_at("follow=yes", now),
            Err(OptionsError::Decode)
        );
        assert_eq!(
            LogOptions::parse_at("tailLines=-1", now),
            Err(OptionsError::Invalid)
        );
        assert_eq!(
            LogOptions::parse_at("limitBytes=0", now),
            Err(OptionsError::Invalid)
        );
        assert_eq!(
            LogOptions::parse_at("sinceSeconds=0", now),
            Err(OptionsError::Invalid)
        );
        assert_eq!(
            LogOptions::parse_at("sinceSeconds=5&sinceTime=2024-01-01T00:00:30Z", now),
            Err(OptionsError::Invalid)
        );
    }
}
