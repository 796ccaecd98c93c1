//! Quartz cron expressions, as Databricks job schedules take them
//! (`quartz_cron_expression` + `timezone_id`): seven fields at most,
//! `sec min hour day-of-month month day-of-week [year]`, with `*`, `?`,
//! lists, ranges, steps (`0/2`, `*/5`, `1-10/3`), month and weekday names,
//! day-of-week 1 = SUN ... 7 = SAT, and exactly one of the two day fields
//! `?`. `L`, `W` and `#` are refused with a clear message rather than
//! half-supported. Time zones come from the system's zoneinfo files.
//!
//! The client validates with the same parser before any request
//! (`check()`), so what R accepts the local cluster accepts.

use std::collections::BTreeSet;

/// A parsed expression: the allowed values of each field.
#[derive(Debug, Clone)]
pub struct Cron {
    sec: BTreeSet<u32>,
    min: BTreeSet<u32>,
    hour: BTreeSet<u32>,
    dom: Option<BTreeSet<u32>>, // None: `?`
    month: BTreeSet<u32>,
    dow: Option<BTreeSet<u32>>, // 1 = Sunday
    year: Option<BTreeSet<u32>>,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parse; `Err` says what is wrong, in the words a user needs.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(format!(
                "a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), this one has {}",
                fields.len()
            ));
        }
        let sec = field(fields[0], "seconds", 0, 59, &[])?.ok_or("`?` is only allowed in the day fields")?;
        let min = field(fields[1], "minutes", 0, 59, &[])?.ok_or("`?` is only allowed in the day fields")?;
        let hour = field(fields[2], "hours", 0, 23, &[])?.ok_or("`?` is only allowed in the day fields")?;
        let dom = field(fields[3], "day-of-month", 1, 31, &[])?;
        let month = field(fields[4], "month", 1, 12, &MONTHS)?.ok_or("`?` is only allowed in the day fields")?;
        let dow = field(fields[5], "day-of-week", 1, 7, &DAYS)?;
        let year = match fields.get(6) {
            Some(f) => Some(field(f, "year", 1970, 2099, &[])?.ok_or("`?` is only allowed in the day fields")?),
            None => None,
        };
        match (&dom, &dow) {
            (None, None) => return Err("only one of day-of-month and day-of-week may be `?`".to_string()),
            (Some(_), Some(_)) => {
                return Err("one of day-of-month and day-of-week must be `?` (Quartz does not support both, e.g. `0 0 2 * * ?`)".to_string())
            }
            _ => {}
        }
        Ok(Cron { sec, min, hour, dom, month, dow, year })
    }

    fn day_ok(&self, y: i64, m: u32, d: u32) -> bool {
        if let Some(dom) = &self.dom {
            return dom.contains(&d);
        }
        if let Some(dow) = &self.dow {
            // days_from_civil(1970-01-01) was a Thursday (Quartz 5).
            let wd = ((days_from_civil(y, m, d) % 7 + 7 + 4) % 7) as u32 + 1;
            return dow.contains(&wd);
        }
        true
    }

    /// The first wall-clock time strictly after `after` (seconds since the
    /// epoch of local time) that matches; None when there is none within
    /// about 10 years (e.g. `0 0 0 30 2 ?`).
    pub fn next_local(&self, after: i64) -> Option<i64> {
        let mut t = after + 1;
        let limit = after + 10 * 366 * 86_400;
        while t <= limit {
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400) as u32);
            let (y, m, d) = civil_from_days(days);
            let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
            let next_day = (days + 1) * 86_400;
            if self.year.as_ref().is_some_and(|ys| !ys.contains(&(y as u32))) {
                if self.year.as_ref().is_some_and(|ys| ys.range((y as u32)..).next().is_none()) {
                    return None;
                }
                t = days_from_civil(y + 1, 1, 1) * 86_400;
                continue;
            }
            if !self.month.contains(&m) {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                t = days_from_civil(ny, nm, 1) * 86_400;
                continue;
            }
            if !self.day_ok(y, m, d) {
                t = next_day;
                continue;
            }
            let Some(&h) = self.hour.range(hh..).next() else {
                t = next_day;
                continue;
            };
            if h != hh {
                t = days * 86_400 + h as i64 * 3600;
                continue;
            }
            let Some(&mi) = self.min.range(mm..).next() else {
                t = days * 86_400 + (hh as i64 + 1) * 3600;
                continue;
            };
            if mi != mm {
                t = days * 86_400 + hh as i64 * 3600 + mi as i64 * 60;
                continue;
            }
            let Some(&s) = self.sec.range(ss..).next() else {
                t = days * 86_400 + hh as i64 * 3600 + (mm as i64 + 1) * 60;
                continue;
            };
            return Some(days * 86_400 + hh as i64 * 3600 + mm as i64 * 60 + s as i64);
        }
        None
    }
}

/// Allowed values of one field; None for `?`.
fn field(text: &str, name: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Option<BTreeSet<u32>>, String> {
    if text == "?" {
        return if name.starts_with("day-of") { Ok(None) } else { Err(format!("`?` is not allowed in the {name} field")) };
    }
    if text.contains(['L', 'W', '#']) && !names.iter().any(|n| text.to_ascii_uppercase().contains(n)) {
        return Err(format!(
            "the {name} field `{text}` uses L, W or #, which dbrxr does not support: list the days instead"
        ));
    }
    let value = |s: &str| -> Result<u32, String> {
        let up = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == up) {
            return Ok(i as u32 + lo);
        }
        let v: u32 = s.parse().map_err(|_| format!("`{s}` is not a valid value in the {name} field `{text}`"))?;
        if v < lo || v > hi {
            return Err(format!("{v} is out of range in the {name} field (allowed: {lo}-{hi})"));
        }
        Ok(v)
    };
    let mut set = BTreeSet::new();
    for part in text.split(',') {
        if part.is_empty() {
            return Err(format!("empty list element in the {name} field `{text}`"));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s.parse().map_err(|_| format!("`{s}` is not a valid step in the {name} field"))?;
                if s == 0 {
                    return Err(format!("a step of 0 in the {name} field"));
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((x, y)) = range.split_once('-') {
            (value(x)?, value(y)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a > b {
            return Err(format!("the range {a}-{b} in the {name} field is reversed"));
        }
        set.extend((a..=b).step_by(step as usize));
    }
    Ok(Some(set))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// A time zone: UTC offsets by transition, from the system's TZif file.
#[derive(Debug, Clone)]
pub struct Zone {
    /// (UTC second the offset starts, offset in seconds), sorted.
    transitions: Vec<(i64, i64)>,
    initial: i64,
}

impl Zone {
    /// `UTC`, `Etc/UTC`, `GMT`, or an IANA name such as `Europe/London`.
    pub fn load(id: &str) -> Result<Zone, String> {
        if matches!(id, "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" | "UCT" | "Etc/UCT") {
            return Ok(Zone { transitions: vec![], initial: 0 });
        }
        let bad = || format!("`{id}` is not a known time zone id (use an IANA name such as \"Europe/London\" or \"UTC\")");
        if id.is_empty() || id.starts_with('/') || id.split('/').any(|s| s.is_empty() || s == "..") {
            return Err(bad());
        }
        let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".to_string());
        let bytes = std::fs::read(std::path::Path::new(&dir).join(id)).map_err(|_| bad())?;
        parse_tzif(&bytes).ok_or_else(bad)
    }

    pub fn offset_at(&self, utc: i64) -> i64 {
        match self.transitions.partition_point(|(t, _)| *t <= utc) {
            0 => self.initial,
            i => self.transitions[i - 1].1,
        }
    }

    /// The UTC instant of a wall-clock time (the earlier one in an overlap;
    /// a time in a gap moves forward by the gap).
    pub fn to_utc(&self, local: i64) -> i64 {
        let guess = local - self.offset_at(local);
        let off = self.offset_at(guess);
        let utc = local - off;
        if self.offset_at(utc) == off {
            utc
        } else {
            local - self.offset_at(utc)
        }
    }
}

/// TZif (RFC 8536): version 2+ files carry 64-bit data after the 32-bit block.
fn parse_tzif(b: &[u8]) -> Option<Zone> {
    let header = |at: usize| -> Option<[usize; 6]> {
        if b.get(at..at + 4)? != b"TZif" {
            return None;
        }
        let n = |i: usize| -> Option<usize> {
            let s = b.get(at + 20 + 4 * i..at + 24 + 4 * i)?;
            Some(u32::from_be_bytes(s.try_into().ok()?) as usize)
        };
        Some([n(0)?, n(1)?, n(2)?, n(3)?, n(4)?, n(5)?]) // isut, isstd, leap, time, type, char
    };
    let h1 = header(0)?;
    let version = *b.get(4)?;
    let (at, h, tsize) = if version >= b'2' {
        let skip = 44 + h1[3] * 5 + h1[4] * 6 + h1[5] + h1[2] * 8 + h1[1] + h1[0];
        (skip, header(skip)?, 8)
    } else {
        (0, h1, 4)
    };
    let [_, _, _, timecnt, typecnt, _] = h;
    let times_at = at + 44;
    let idx_at = times_at + timecnt * tsize;
    let types_at = idx_at + timecnt;
    let ttype = |i: usize| -> Option<i64> {
        let s = b.get(types_at + 6 * i..types_at + 6 * i + 4)?;
        Some(i32::from_be_bytes(s.try_into().ok()?) as i64)
    };
    if typecnt == 0 {
        return None;
    }
    let mut transitions = Vec::with_capacity(timecnt);
    for i in 0..timecnt {
        let s = b.get(times_at + i * tsize..times_at + (i + 1) * tsize)?;
        let t = if tsize == 8 {
            i64::from_be_bytes(s.try_into().ok()?)
        } else {
            i32::from_be_bytes(s.try_into().ok()?) as i64
        };
        let ti = *b.get(idx_at + i)? as usize;
        transitions.push((t, ttype(ti)?));
    }
    Some(Zone { transitions, initial: ttype(0)? })
}

/// A schedule: expression and zone, checked together.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: Cron,
    pub zone: Zone,
}

impl Schedule {
    pub fn new(expr: &str, timezone_id: &str) -> Result<Schedule, String> {
        Ok(Schedule { cron: Cron::parse(expr)?, zone: Zone::load(timezone_id)? })
    }

    /// The next firing strictly after `after_ms` (UTC, milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let utc = after_ms.div_euclid(1000);
        let local = utc + self.zone.offset_at(utc);
        let next = self.cron.next_local(local)?;
        let mut at = self.zone.to_utc(next);
        if at <= utc {
            // The wall clock went back (end of summer time): look past it.
            at = self.zone.to_utc(self.cron.next_local(local + (utc - at) + 1)?);
        }
        Some(at * 1000)
    }
}

/// Validate an expression and zone; the client calls this before any request.
pub fn check(expr: &str, timezone_id: &str) -> Result<(), String> {
    let s = Schedule::new(expr, timezone_id)?;
    let now = crate::local::cluster::now_ms() as i64;
    if s.next_after(now).is_none() {
        return Err(format!("`{expr}` never fires (no matching time in the next ten years)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000
    }

    #[test]
    fn civil_round_trips() {
        for z in [-800_000, -1, 0, 1, 19_000, 20_424, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn every_two_seconds_and_daily() {
        let s = Schedule::new("0/2 * * * * ?", "UTC").unwrap();
        let t = utc(2026, 12, 2, 10, 0, 1);
        assert_eq!(s.next_after(t), Some(utc(2026, 12, 2, 10, 0, 2)));
        assert_eq!(s.next_after(utc(2026, 12, 2, 10, 0, 58)), Some(utc(2026, 12, 2, 10, 1, 0)));
        let d = Schedule::new("0 0 2 * * ?", "UTC").unwrap();
        assert_eq!(d.next_after(t), Some(utc(2026, 12, 3, 2, 0, 0)));
    }

    #[test]
    fn weekdays_months_and_years() {
        // 2026-12-02 is a Wednesday; next Monday 06:30 is 12-07.
        let s = Schedule::new("0 30 6 ? * MON", "UTC").unwrap();
        assert_eq!(s.next_after(utc(2026, 12, 2, 0, 0, 0)), Some(utc(2026, 12, 7, 6, 30, 0)));
        let s = Schedule::new("0 0 0 1 JAN,jul ? 2027", "UTC").unwrap();
        assert_eq!(s.next_after(utc(2026, 12, 2, 0, 0, 0)), Some(utc(2027, 1, 1, 0, 0, 0)));
        assert_eq!(s.next_after(utc(2027, 7, 1, 0, 0, 0)), None);
        assert!(Cron::parse("0 0 0 30 2 ?").unwrap().next_local(0).is_none());
    }

    #[test]
    fn time_zones_shift_the_wall_clock() {
        if Zone::load("Europe/London").is_err() {
            return; // no zoneinfo on this machine
        }
        let s = Schedule::new("0 0 2 * * ?", "Europe/London").unwrap();
        // Summer: 02:00 BST is 01:00 UTC; winter: 02:00 GMT.
        assert_eq!(s.next_after(utc(2026, 7, 1, 12, 0, 0)), Some(utc(2026, 7, 2, 1, 0, 0)));
        assert_eq!(s.next_after(utc(2026, 12, 1, 12, 0, 0)), Some(utc(2026, 12, 2, 2, 0, 0)));
    }

    #[test]
    fn bad_expressions_say_why() {
        for (e, want) in [
            ("* * * * *", "6 or 7 fields"),
            ("0 0 2 * * *", "must be `?`"),
            ("0 0 2 ? * ?", "only one"),
            ("0 61 * * * ?", "out of range"),
            ("0 0 2 L * ?", "L, W or #"),
            ("0 0 x * * ?", "not a valid value"),
            ("0 0/0 * * * ?", "step of 0"),
            ("? 0 0 * * ?", "not allowed"),
        ] {
            let err = Cron::parse(e).unwrap_err();
            assert!(err.contains(want), "{e}: {err}");
        }
        assert!(Zone::load("Mars/Olympus").is_err());
        assert!(Zone::load("../etc/passwd").is_err());
        assert!(check("0 0 0 30 2 ?", "UTC").unwrap_err().contains("never fires"));
    }
}
