//! Time of day and week: when tickets open, and when agents are on shift (all in UTC).

use rand_chacha::ChaCha8Rng;

use super::sample::{chance, lognormal, pick, unit};
use crate::schema::{DAY_MS, HOUR_MS};

/// Relative opening rate per UTC hour: quiet nights, a broad business-day plateau.
const HOUR_WEIGHTS: [f64; 24] = [
    0.15, 0.12, 0.10, 0.10, 0.12, 0.20, 0.35, 0.60, 0.90, 1.00, 1.00, 1.00, //
    0.95, 1.00, 1.00, 0.95, 0.90, 0.80, 0.65, 0.50, 0.40, 0.30, 0.25, 0.20,
];
/// Relative opening rate per weekday, Monday first.
const WEEKDAY_WEIGHTS: [f64; 7] = [1.10, 1.00, 1.00, 1.00, 0.95, 0.35, 0.30];
/// Weekday shift: 07:00–19:00 UTC. Weekend skeleton crew: 09:00–17:00 UTC.
const WEEKDAY_SHIFT: (i64, i64) = (7, 19);
const WEEKEND_SHIFT: (i64, i64) = (9, 17);
/// Share of agent actions proposed outside a shift that wait for the next one (the rest are
/// done on call).
const WAIT_FOR_SHIFT: f64 = 0.8;

/// Monday = 0 for a UTC epoch day (1970-01-01 was a Thursday).
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Opening-time sampler over `span_days` days from `start_ms` (rounded down to midnight UTC).
pub(super) struct Calendar {
    first_day: i64,
    /// Cumulative day weights.
    cumulative: Vec<f64>,
}

impl Calendar {
    pub(super) fn new(start_ms: i64, span_days: u32) -> Self {
        let first_day = start_ms.div_euclid(DAY_MS);
        let mut acc = 0.0;
        let cumulative = (0..i64::from(span_days))
            .map(|d| {
                acc += WEEKDAY_WEIGHTS[weekday(first_day + d)];
                acc
            })
            .collect();
        Calendar { first_day, cumulative }
    }

    /// A ticket's opening time: a day by weekday weight, an hour by hour weight, then a uniform
    /// millisecond within the hour.
    pub(super) fn opening_time(&self, rng: &mut ChaCha8Rng) -> i64 {
        let total = *self.cumulative.last().expect("span_days >= 1");
        let x = unit(rng) * total;
        let d = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1);
        let hour = pick(rng, &HOUR_WEIGHTS) as i64;
        let within = (unit(rng) * HOUR_MS as f64) as i64;
        (self.first_day + d as i64) * DAY_MS + hour * HOUR_MS + within
    }
}

fn shift_of(day: i64) -> (i64, i64) {
    if weekday(day) < 5 {
        WEEKDAY_SHIFT
    } else {
        WEEKEND_SHIFT
    }
}

/// The time an agent action proposed for `t` happens: unchanged inside a shift; otherwise
/// usually at the start of the next shift plus a short pickup delay.
pub(super) fn agent_time(rng: &mut ChaCha8Rng, t: i64) -> i64 {
    let day = t.div_euclid(DAY_MS);
    let hour = t.rem_euclid(DAY_MS) / HOUR_MS;
    let (start, end) = shift_of(day);
    if (start..end).contains(&hour) || !chance(rng, WAIT_FOR_SHIFT) {
        return t;
    }
    let next_day = if hour < start { day } else { day + 1 };
    let next_start = next_day * DAY_MS + shift_of(next_day).0 * HOUR_MS;
    next_start + (lognormal(rng, 30.0, 1.0) * 60_000.0) as i64
}

/// Whether `t` falls outside the agents' shift (SLA timers keep running then).
pub(super) fn off_hours(t: i64) -> bool {
    let day = t.div_euclid(DAY_MS);
    let hour = t.rem_euclid(DAY_MS) / HOUR_MS;
    let (start, end) = shift_of(day);
    !(start..end).contains(&hour)
}
