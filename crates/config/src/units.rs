//! Parsers for the value syntaxes upstream's flags and config file use: Go durations
//! (`time.ParseDuration`), Kubernetes quantities (`resource.Quantity`, through kubelet-quantity), Go booleans
//! (`strconv.ParseBool`) and integers.

use std::time::Duration;

/// Parses a Go duration such as `20s`, `1m30s`, `2m`, `100ms`, `1.5h` or `0`.
/// Negative durations are refused: no kubelet duration setting accepts them.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(
            "not a duration: expected a number with a unit such as 20s, 1m30s or 100ms".into(),
        );
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "missing unit after {number:?}: use ns, us, ms, s, m or h"
                ));
            }
            other => return Err(format!("unknown unit {other:?}: use ns, us, ms, s, m or h")),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("invalid number {number:?}"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("number {whole:?} is too large"))?
        };
        let mut part = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| "duration is too large".to_string())?;
        // Go truncates fractional nanoseconds; only the first digits that matter are used.
        let mut scale = unit_nanos;
        for digit in fraction.bytes().take(20) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| "duration is too large".to_string())?;
    }
    if negative && total_nanos > 0 {
        return Err("must not be negative".into());
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| "duration is too large".to_string())?;
    Ok(Duration::from_nanos(nanos))
}

/// Parses a Kubernetes quantity (`10Mi`, `1.5Gi`, `100M`, `500m`, `1e3`) and returns its value
/// rounded up to a whole number, like `Quantity.Value()`.
pub(crate) fn parse_quantity(text: &str) -> Result<i128, String> {
    match kubelet_quantity::Quantity::parse(text) {
        Ok(quantity) => Ok(quantity.scaled_ceil(0)),
        Err(kubelet_quantity::QuantityError::TooLarge) => {
            Err(format!("quantity {text:?} is too large"))
        }
        Err(kubelet_quantity::QuantityError::Syntax) => Err(format!(
            "{text:?} is not a quantity (examples: 10Mi, 512Ki, 1G, 1500)"
        )),
    }
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean (use true or false)")),
    }
}

/// Parses a decimal integer with an optional sign.
pub(crate) fn parse_int(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("4h0m0s"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10\u{b5}s"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn bad_durations() {
        for text in ["", "20", "s", "1x", "1..2s", "abc", "-", "1s2", "."] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
        assert_eq!(
            parse_duration("-1s"),
            Err("must not be negative".to_string())
        );
        assert!(parse_duration("100000000000h").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10Mi"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_quantity("256Ki"), Ok(256 * 1024));
        assert_eq!(parse_quantity("1.5Gi"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(parse_quantity("100M"), Ok(100_000_000));
        assert_eq!(parse_quantity("1k"), Ok(1000));
        assert_eq!(parse_quantity("1500"), Ok(1500));
        assert_eq!(parse_quantity("1e3"), Ok(1000));
        assert_eq!(parse_quantity("1E3"), Ok(1000));
        assert_eq!(parse_quantity("500m"), Ok(1), "milli values round up");
        assert_eq!(parse_quantity("0"), Ok(0));
        assert_eq!(parse_quantity("-2Ki"), Ok(-2048));
        assert_eq!(parse_quantity("+2"), Ok(2));
    }

    #[test]
    fn bad_quantities() {
        for text in ["", "Mi", "10MB", "10 Mi", "1.2.3", "ten", "10mi", "1e"] {
            assert!(parse_quantity(text).is_err(), "{text:?} should be refused");
        }
        assert!(parse_quantity("99999999999999999999999999999999999999999Ei").is_err());
    }

    #[test]
    fn go_bools_and_ints() {
        for text in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(text), Ok(true));
        }
        for text in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(text), Ok(false));
        }
        assert!(parse_bool("yes").is_err());
        assert_eq!(parse_int("-999"), Ok(-999));
        assert!(parse_int("1.5").is_err());
    }
}
