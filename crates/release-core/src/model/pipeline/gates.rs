//! The promotion gates of an environment (`requires`, `soak`, `approvals`, `windows`, `auto`): what a pipeline says
//! a commit must have passed before it enters. Whether a gate is open now is `observe::gates`'s judgement.

use std::time::Duration;

use serde::Serialize;

use crate::model::clock::{format_duration, Timestamp};
use crate::model::ids::EnvName;

/// `requires`, `soak`, `approvals`, `windows` and `auto` of one environment; all empty: no gate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Gates {
    /// Environments a commit must have been promoted to (successfully) before this one.
    pub requires: Vec<EnvName>,
    /// How long it must have served in each of `requires` (without one of that environment's rollout alarms firing).
    #[serde(serialize_with = "ser_opt")]
    pub soak: Option<Duration>,
    /// Distinct people who ran `release approve <sha> --env NAME`.
    pub approvals: u32,
    /// Promote, switch and rollouts may start only inside one of these; none: any time.
    pub windows: Vec<Window>,
    /// `release reconcile` promotes the newest eligible bake here by itself.
    pub auto: bool,
}

impl Gates {
    /// Whether any gate holds this environment.
    pub fn any(&self) -> bool {
        !self.requires.is_empty() || self.soak.is_some() || self.approvals > 0 || !self.windows.is_empty()
    }
}

fn ser_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// One deploy window, `mon-fri 09:00-16:00 Europe/Lisbon`: days of the week, a span of wall-clock time on each of
/// those days, and the IANA zone that wall clock is in (UTC when none is written). Daylight-saving changes move the
/// window with the zone's clock, as the people in it see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Window {
    text: String,
    /// Bit 0 = Monday ... bit 6 = Sunday.
    days: u8,
    /// Minutes after local midnight, start inclusive, end exclusive.
    start: u16,
    end: u16,
    zone: String,
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.text
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Reads `DAYS HH:MM-HH:MM [ZONE]`; DAYS is `mon-fri`, `sat,sun`, `mon,wed-fri` or `daily`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (days, hours, zone) = match parts.as_slice() {
            [d, h] => (*d, *h, "UTC"),
            [d, h, z] => (*d, *h, *z),
            _ => return Err(format!("window `{text}` is not `DAYS HH:MM-HH:MM ZONE`, like \"mon-fri 09:00-16:00 Europe/Lisbon\"")),
        };
        let days = parse_days(days).ok_or_else(|| format!("window `{text}`: `{days}` is not a list of days; write days like mon-fri, sat,sun or daily"))?;
        let (start, end) = hours
            .split_once('-')
            .and_then(|(a, b)| Some((parse_hm(a)?, parse_hm(b)?)))
            .ok_or_else(|| format!("window `{text}`: `{hours}` is not a span of time; write HH:MM-HH:MM, like 09:00-16:00"))?;
        if end <= start {
            return Err(format!("window `{text}` ends before it starts; write the earlier time first (an end of 24:00 is midnight)"));
        }
        crate::model::clock::zone(zone).map_err(|why| format!("window `{text}`: {why}"))?;
        Ok(Window { text: text.to_owned(), days, start, end, zone: zone.to_owned() })
    }

    /// As written.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn tz(&self) -> jiff::tz::TimeZone {
        // Checked when parsed; a zone the database lost since is read as UTC rather than failing a judgement.
        crate::model::clock::zone(&self.zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// Whether `t` falls inside the window.
    pub fn is_open(&self, t: Timestamp) -> bool {
        let z = t.in_zone(&self.tz());
        let day = z.weekday().to_monday_zero_offset() as u8;
        let minute = z.hour() as u16 * 60 + z.minute() as u16;
        self.days & (1 << day) != 0 && minute >= self.start && minute < self.end
    }

    /// The next moment after `t` the window opens, within the coming week.
    pub fn next_open(&self, t: Timestamp) -> Option<Timestamp> {
        let tz = self.tz();
        let mut date = t.in_zone(&tz).date();
        for _ in 0..8 {
            let day = date.weekday().to_monday_zero_offset() as u8;
            if self.days & (1 << day) != 0 {
                let at = date.at((self.start / 60) as i8, (self.start % 60) as i8, 0, 0);
                // A start inside a daylight-saving gap opens at the first instant after it (jiff's "compatible").
                if let Ok(z) = at.to_zoned_datetime(tz.clone()) {
                    let open = Timestamp::from_jiff(z.timestamp());
                    if open > t {
                        return Some(open);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// `Mon 09:00 Europe/Lisbon`: when it next opens, as the zone reads it.
    pub fn describe_next(&self, t: Timestamp) -> Option<String> {
        self.next_open(t).map(|o| o.local(&self.tz()))
    }
}

fn parse_days(s: &str) -> Option<u8> {
    if s == "daily" || s == "*" {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    for part in s.split(',') {
        let idx = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                let mut i = a;
                loop {
                    mask |= 1 << i;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => mask |= 1 << idx(part)?,
        }
    }
    Some(mask)
}

fn parse_hm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::from_jiff(s.parse().unwrap())
    }

    #[test]
    fn a_lisbon_window_follows_daylight_saving_time() {
        let w = Window::parse("mon-fri 09:00-16:00 Europe/Lisbon").unwrap();
        // Winter: Lisbon is on UTC.
        assert!(!w.is_open(at("2026-03-27T08:30:00Z")), "Friday 08:30 in Lisbon");
        assert!(w.is_open(at("2026-03-27T09:00:00Z")));
        assert!(!w.is_open(at("2026-03-27T16:00:00Z")), "the end is exclusive");
        // Closed on the weekend; it reopens on Monday 09:00 local, which after the change of Sunday 29 March
        // (01:00 UTC) is 08:00 UTC.
        assert!(!w.is_open(at("2026-03-28T10:00:00Z")));
        assert_eq!(w.next_open(at("2026-03-27T17:00:00Z")), Some(at("2026-03-30T08:00:00Z")));
        assert_eq!(w.describe_next(at("2026-03-27T17:00:00Z")).unwrap(), "Mon 09:00 Europe/Lisbon");
        assert!(w.is_open(at("2026-03-30T08:30:00Z")), "Monday 09:30 summer time");
        // And back in October (last Sunday, the 25th): Monday 09:00 is 09:00 UTC again.
        assert_eq!(w.next_open(at("2026-10-23T17:00:00Z")), Some(at("2026-10-26T09:00:00Z")));
    }

    #[test]
    fn a_start_inside_the_spring_gap_opens_when_the_clock_jumps() {
        // New York skips 02:00-03:00 on 8 March 2026.
        let w = Window::parse("sun 02:30-04:00 America/New_York").unwrap();
        let open = w.next_open(at("2026-03-07T12:00:00Z")).unwrap();
        assert_eq!(open, at("2026-03-08T07:30:00Z"), "02:30 does not exist; 03:30 EDT is 07:30 UTC");
    }

    #[test]
    fn malformed_windows_say_what_to_write() {
        assert!(Window::parse("mon-fri 09:00-16:00 Europe/Lisboa").unwrap_err().contains("not a known time zone"));
        assert!(Window::parse("weekdays 09:00-16:00").unwrap_err().contains("not a list of days"));
        assert!(Window::parse("mon 9-16").unwrap_err().contains("HH:MM-HH:MM"));
        assert!(Window::parse("mon 16:00-09:00").unwrap_err().contains("ends before it starts"));
        assert!(Window::parse("mon").is_err());
        let w = Window::parse("fri-mon 22:00-24:00").unwrap();
        assert!(w.is_open(at("2026-03-29T23:59:00Z")), "Sunday, wrapping the week, UTC by default");
        assert!(!w.is_open(at("2026-03-31T23:00:00Z")), "Tuesday");
    }
}
