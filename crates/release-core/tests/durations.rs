//! One duration syntax everywhere: the pipeline file's, `gc --older-than`'s, `--pause`'s, `--wait`'s.

use std::time::Duration;

use release_core::model::clock::parse_duration;

#[test]
fn days_are_a_unit_everywhere() {
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
    assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(86_400 + 12 * 3600)));
    assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("d").is_err());
    assert!(parse_duration("two weeks").unwrap_err().contains("is not a duration"));
}

#[test]
fn a_unit_written_as_a_word_says_which_unit_to_use() {
    assert_eq!(
        parse_duration("10 minutes").unwrap_err(),
        "`10 minutes` is not a duration: write the unit right after the number, as `10m` (units: ms, s, m, h, d)"
    );
    assert!(parse_duration("2 days").unwrap_err().contains("as `2d`"));
    assert!(parse_duration("30secs").unwrap_err().contains("write `30s`"));
    assert!(parse_duration("30").unwrap_err().contains("has no unit; add one of ms, s, m, h, d"));
    assert!(parse_duration("2x").unwrap_err().starts_with("`2x` has an unknown unit `x`"));
}
