//! Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send
//! in protobuf where this server otherwise only speaks JSON: a CSR approval
//! (`kubectl certificate approve` / `deny`).
//!
//! The envelope is the magic "k8s\0" then a runtime.Unknown (raw = field 2) holding the
//! object's message; field numbers are those of upstream's generated.proto.

use serde_json::{Value, json};

use crate::error::ApiError;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: its number and its value (varint or length-delimited bytes;
/// fixed-width fields are skipped as no field read here has them).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid protobuf body: {what}"))
}

fn varint(buf: &mut &[u8]) -> Result<u64, ApiError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or_else(|| bad("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint too long"))
}

/// The fields of one message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        match key & 7 {
            0 => out.push((number, Field::Varint(varint(&mut buf)?))),
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                buf = buf
                    .get(width..)
                    .ok_or_else(|| bad("truncated fixed field"))?;
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| bad("length"))?;
                let (bytes, rest) = buf
                    .split_at_checked(len)
                    .ok_or_else(|| bad("truncated field"))?;
                out.push((number, Field::Bytes(bytes)));
                buf = rest;
            }
            _ => return Err(bad("unsupported wire type")),
        }
    }
    Ok(out)
}

fn bytes_field<'a>(fields: &[(u64, Field<'a>)], number: u64) -> Option<&'a [u8]> {
    fields.iter().rev().find_map(|(n, f)| match f {
        Field::Bytes(b) if *n == number => Some(*b),
        _ => None,
    })
}

fn string_field(fields: &[(u64, Field<'_>)], number: u64) -> Option<String> {
    bytes_field(fields, number).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A metav1.Time (seconds = 1) as RFC 3339.
fn time_field(fields: &[(u64, Field<'_>)], number: u64) -> Result<Option<String>, ApiError> {
    let Some(time) = bytes_field(fields, number) else {
        return Ok(None);
    };
    let seconds = self::fields(time)?
        .iter()
        .find_map(|(n, f)| match f {
            Field::Varint(v) if *n == 1 => Some(*v as i64),
            _ => None,
        })
        .unwrap_or(0);
    let at = jiff::Timestamp::from_second(seconds).map_err(|_| bad("time out of range"))?;
    Ok(Some(crate::meta::timestamp(at)))
}

/// The object message inside the "k8s\0" + runtime.Unknown envelope.
fn unwrap_envelope(body: &[u8]) -> Result<&[u8], ApiError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("no k8s envelope"))?;
    bytes_field(&fields(unknown)?, 2).ok_or_else(|| bad("no raw object"))
}

/// A certificates.k8s.io/v1 CertificateSigningRequest's resourceVersion and status
/// conditions, as JSON: what an approval update carries.
pub fn csr_approval(body: &[u8]) -> Result<Value, ApiError> {
    let csr = fields(unwrap_envelope(body)?)?;
    let resource_version = match bytes_field(&csr, 1) {
        Some(meta) => string_field(&fields(meta)?, 6).unwrap_or_default(),
        None => String::new(),
    };
    let mut conditions = Vec::new();
    if let Some(status) = bytes_field(&csr, 3) {
        for (number, field) in fields(status)? {
            let (1, Field::Bytes(condition)) = (number, field) else {
                continue;
            };
            let c = fields(condition)?;
            let mut out = json!({
                "type": string_field(&c, 1).unwrap_or_default(),
                "status": string_field(&c, 6).unwrap_or_default(),
            });
            for (key, n) in [("reason", 2), ("message", 3)] {
                if let Some(v) = string_field(&c, n) {
                    out[key] = v.into();
                }
            }
            for (key, n) in [("lastUpdateTime", 4), ("lastTransitionTime", 5)] {
                if let Some(v) = time_field(&c, n)? {
                    out[key] = v.into();
                }
            }
            conditions.push(out);
        }
    }
    Ok(json!({
        "metadata": {"resourceVersion": resource_version},
        "status": {"conditions": conditions},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (number, bytes) in fields {
            out.push(((number << 3) | 2) as u8);
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        out
    }

    #[test]
    fn reads_an_approval() {
        let time = [0x08, 0x80, 0xa3, 0xc3, 0xd4, 0x06]; // seconds = 1_753_000_320
        let condition = message(&[
            (1, b"Approved"),
            (2, b"KubectlApprove"),
            (4, &time),
            (6, b"True"),
        ]);
        let status = message(&[(1, &condition)]);
        let meta = message(&[(1, b"csr-1"), (6, b"42")]);
        let csr = message(&[(1, &meta), (3, &status)]);
        let unknown = message(&[(1, b""), (2, &csr)]);
        let body = [MAGIC, &unknown].concat();
        let approval = csr_approval(&body).unwrap();
        assert_eq!(approval["metadata"]["resourceVersion"], "42");
        let c = &approval["status"]["conditions"][0];
        assert_eq!(c["type"], "Approved");
        assert_eq!(c["status"], "True");
        assert_eq!(c["reason"], "KubectlApprove");
        assert!(c["lastUpdateTime"].as_str().unwrap().ends_with('Z'));
    }
}
