//! Time as a port: the engine never reads the system clock directly, so the in-memory cloud can run a
//! ten-minute health timeout in microseconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// `d` later.
    pub fn add(self, d: Duration) -> Self {
        Self(self.0 + d.as_millis() as i64)
    }

    /// How long after `earlier` (zero when before it).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis((self.0 - earlier.0).max(0) as u64)
    }

    fn utc(self) -> jiff::Timestamp {
        // Out of jiff's range (years -9999..=9999) only for nonsense values; clamp rather than panic in a Display.
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 { jiff::Timestamp::MIN } else { jiff::Timestamp::MAX })
    }

    /// `20261122T034950Z`, for ids that sort by time.
    pub fn compact(self) -> String {
        self.utc().strftime("%Y%m%dT%H%M%SZ").to_string()
    }

    /// This instant in `zone`, for judgements that follow a wall clock (deploy windows).
    pub fn in_zone(self, zone: &jiff::tz::TimeZone) -> jiff::ZonedDateTime {
        self.utc().to_zoned_datetime(zone.clone())
    }

    /// From a jiff instant (to the millisecond).
    pub fn from_jiff(t: jiff::Timestamp) -> Self {
        Self(t.as_millisecond())
    }

    /// `Mon 09:00 Europe/Lisbon`: a moment as the people of `zone` read it.
    pub fn local(self, zone: &jiff::tz::TimeZone) -> String {
        let z = self.in_zone(zone);
        format!("{} {}", z.strftime("%a %H:%M"), zone.iana_name().unwrap_or("UTC"))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with seconds, UTC: `2026-11-22T03:49:50Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.utc().strftime("%Y-%m-%dT%H:%M:%SZ"))
    }
}

/// A time zone by its IANA name (`Europe/Lisbon`), from the system's database.
pub fn zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| format!("`{name}` is not a known time zone; write an IANA name like \"Europe/Lisbon\" or \"UTC\""))
}

/// A moment given on the command line (`freeze --until`): RFC 3339 (`2026-12-24T18:00:00Z`, or with an offset), a
/// wall time in a zone (`2026-12-24T18:00[Europe/Lisbon]`), or a duration from `now` (`3d`).
pub fn parse_when(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(Timestamp::from_jiff(t));
    }
    if let Ok(z) = s.parse::<jiff::ZonedDateTime>() {
        return Ok(Timestamp::from_jiff(z.timestamp()));
    }
    match parse_duration(s) {
        Ok(d) => Ok(now.add(d)),
        Err(_) => Err(format!(
            "`{s}` is neither a moment nor a duration; write RFC 3339 (\"2026-12-24T18:00:00Z\"), a wall time in a zone (\"2026-12-24T18:00[Europe/Lisbon]\") or a duration from now (\"3d\")"
        )),
    }
}

/// Time: the system clock in production, simulated time in tests. Every wait of the engine goes through it.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// Waits `d`.
    async fn sleep(&self, d: Duration);
}

/// The one duration syntax, for pipeline files and every flag (`--older-than`, `--pause`, `--wait`, ...): `500ms`,
/// `30s`, `10m`, `1h`, `2d`, or combinations like `1m30s` and `1d12h`. jiff reads it (a day is 24 hours here:
/// these are spans of elapsed time, not calendar days); the shape is checked first so that a unit written as a word
/// or a missing unit gets a message saying what to write.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    diagnose(s)?;
    let span: jiff::Span = s.parse().map_err(|_| format!("`{s}` is not a duration (units: ms, s, m, h, d, largest first)"))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| format!("`{s}` is too large"))?;
    Duration::try_from(d).map_err(|_| format!("`{s}` is negative"))
}

/// Whether `s` is numbers each followed by one of our units, and if not, what to write instead.
fn diagnose(s: &str) -> Result<(), String> {
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("`{s}` is not a duration"));
        }
        let n = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        match unit {
            "ms" | "s" | "m" | "h" | "d" => {}
            // `10 minutes`: a word after a space is the unit people meant.
            "" if rest.starts_with(' ') => {
                let word: String = rest.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                return Err(match unit_for(&word) {
                    Some(u) => format!("`{s}` is not a duration: write the unit right after the number, as `{n}{u}` (units: ms, s, m, h, d)"),
                    None => format!("`{s}` is not a duration: write a number and a unit without a space, like `{n}m` (units: ms, s, m, h, d)"),
                });
            }
            "" => return Err(format!("`{s}` has no unit; add one of ms, s, m, h, d (like `{n}s`)")),
            other => {
                return Err(match unit_for(other) {
                    Some(u) => format!("`{s}` has an unknown unit `{other}`; write `{n}{u}` (units: ms, s, m, h, d)"),
                    None => format!("`{s}` has an unknown unit `{other}`; use ms, s, m, h or d"),
                })
            }
        }
    }
    Ok(())
}

/// The unit a word people write means: `minutes` -> `m`.
fn unit_for(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Some("ms"),
        "s" | "sec" | "secs" | "second" | "seconds" => Some("s"),
        "m" | "min" | "mins" | "minute" | "minutes" => Some("m"),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some("h"),
        "d" | "day" | "days" => Some("d"),
        _ => None,
    }
}

/// Serializes a duration in its shortest readable form (`30s`).
pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// The shortest readable form of a duration: `10m`, `1m30s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_795_146_590_000).to_string(), "2026-11-20T03:49:50Z");
        assert_eq!(Timestamp(951_782_400_000).to_string(), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(5 * 86_400)), "days, as gc --older-than always took");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
