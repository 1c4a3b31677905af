use super::*;

fn q(text: &str) -> Quantity {
    Quantity::parse(text).unwrap()
}

#[test]
fn equal_values_in_different_notations() {
    assert_eq!(q("1"), q("1000m"));
    assert_eq!(q("1k"), q("1e3"));
    assert_eq!(q("1k"), q("1E3"));
    assert_eq!(q("1Ki"), q("1024"));
    assert_eq!(q("0.5"), q("500m"));
    assert_eq!(q(".5"), q("500m"));
    assert_eq!(q("1.5Gi"), q("1536Mi"));
    assert_eq!(q("+2"), q("2"));
    assert_eq!(q(" 2 "), q("2"));
    assert_eq!(q("1e-3"), q("1m"));
    assert_eq!(q("0"), Quantity::ZERO);
    assert_eq!(q("-0"), Quantity::ZERO);
}

#[test]
fn ordering() {
    assert!(q("100m") < q("1"));
    assert!(q("1G") < q("1Gi"));
    assert!(q("-1") < q("0"));
    assert!(q("1n") > q("0"));
}

#[test]
fn values_round_up_like_apimachinery() {
    let table = [
        ("0", 0, 0),
        ("100m", 1, 100),
        ("1", 1, 1000),
        ("1.5", 2, 1500),
        ("250u", 1, 1),
        ("5n", 1, 1),
        ("1Ki", 1024, 1_024_000),
        ("128Mi", 134_217_728, 134_217_728_000),
        ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
        ("1G", 1_000_000_000, 1_000_000_000_000),
        ("129e6", 129_000_000, 129_000_000_000),
        ("1500m", 2, 1500),
        ("-1.5", -2, -1500),
        ("-2Ki", -2048, -2_048_000),
    ];
    for (text, value, milli) in table {
        assert_eq!(q(text).value(), value, "value of {text}");
        assert_eq!(q(text).milli_value(), milli, "milli value of {text}");
        assert_eq!(super::value(text), Ok(value), "value of {text}");
        assert_eq!(super::milli_value(text), Ok(milli), "milli value of {text}");
    }
}

#[test]
fn sub_nano_values_round_away_from_zero() {
    assert_eq!(q("1e-10"), q("1n"));
    assert_eq!(q("-1e-10"), q("-1n"));
    assert_eq!(q("1e-400"), q("1n"));
    assert_eq!(q("0e-400"), Quantity::ZERO);
}

#[test]
fn large_values_saturate_or_fail() {
    assert_eq!(q("100Ei").value(), i64::MAX);
    assert_eq!(q("-100Ei").value(), i64::MIN);
    assert_eq!(q("100Ei").scaled_ceil(0), 100i128 << 60);
    assert_eq!(Quantity::parse("1e40"), Err(QuantityError::TooLarge));
    assert_eq!(
        Quantity::parse("99999999999999999999999999999999999999999Ei"),
        Err(QuantityError::TooLarge)
    );
}

#[test]
fn rejects_bad_syntax() {
    for bad in [
        "", "abc", "Mi", "1x", "1.2.3", "1Kb", "10MB", "10mi", "10 Mi", "e3", "1e", "1e+", "--1",
        ".", "1Zi",
    ] {
        assert_eq!(Quantity::parse(bad), Err(QuantityError::Syntax), "{bad:?}");
    }
}

#[test]
fn canonical_strings() {
    assert_eq!(binary_string(0), "0");
    assert_eq!(binary_string(1000), "1000");
    assert_eq!(binary_string(1024), "1Ki");
    assert_eq!(binary_string(16_770_060_288), "16377012Ki");
    assert_eq!(binary_string(2 * 1024 * 1024), "2Mi");
    assert_eq!(binary_string(1 << 30), "1Gi");
    assert_eq!(cpu_millis_string(2000), "2");
    assert_eq!(cpu_millis_string(1500), "1500m");
    assert_eq!(cpu_millis_string(0), "0");
}
