//! The metav1.Status that remotecommand v4 and later write on the error stream, encoded as Go's
//! encoding/json would (field order and omitempty included), so clients parse it unchanged.

use serde::Serialize;

use crate::backend::BackendError;

#[derive(Serialize)]
struct Status<'a> {
    metadata: Metadata,
    status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Metadata {}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

/// How a session ended, as the error stream reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command exited non-zero (exec only; upstream reports attach failures as internal).
    NonZeroExit {
        code: i32,
        message: String,
    },
    /// Anything else: upstream's apierrors.NewInternalError.
    Internal(String),
}

impl Outcome {
    /// Upstream's wording: exec failures are "error executing command in container: ...",
    /// attach failures "error attaching to container: ...".
    pub fn of_exec(result: Result<(), BackendError>, cmd: &[String]) -> Self {
        match result {
            Ok(()) => Outcome::Success,
            Err(BackendError::NonZeroExit(code)) => Outcome::NonZeroExit {
                code,
                // containerd's exit error text, as upstream formats it after this prefix.
                message: format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    cmd.join(" ")
                ),
            },
            Err(e) => Outcome::Internal(format!("error executing command in container: {e}")),
        }
    }

    pub fn of_attach(result: Result<(), BackendError>) -> Self {
        match result {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::Internal(format!("error attaching to container: {e}")),
        }
    }

    /// The v4/v5 error stream payload: metav1.Status JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let code_text;
        let internal_message;
        let status = match self {
            Outcome::Success => Status {
                metadata: Metadata {},
                status: "Success",
                message: "",
                reason: "",
                details: None,
                code: None,
            },
            Outcome::NonZeroExit { code, message } => {
                code_text = code.to_string();
                Status {
                    metadata: Metadata {},
                    status: "Failure",
                    message,
                    reason: "NonZeroExitCode",
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: "ExitCode",
                            message: &code_text,
                        }],
                    }),
                    code: None,
                }
            }
            Outcome::Internal(cause) => {
                internal_message = format!("Internal error occurred: {cause}");
                Status {
                    metadata: Metadata {},
                    status: "Failure",
                    message: &internal_message,
                    reason: "InternalError",
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: "",
                            message: cause,
                        }],
                    }),
                    code: Some(500),
                }
            }
        };
        serde_json::to_vec(&status).expect("a Status always serializes")
    }

    /// The v1-v3 error stream payload: the message alone, nothing on success.
    pub fn to_text(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Success => None,
            Outcome::NonZeroExit { message, .. } => Some(message.clone().into_bytes()),
            Outcome::Internal(cause) => {
                Some(format!("Internal error occurred: {cause}").into_bytes())
            }
        }
    }
}
