//! The story's parameters, with the defaults `docs/harbor.md` explains.

use serde::{Deserialize, Serialize};

/// One escalation trigger: when its pattern occurs, the ticket escalates with probability `p`
/// after a log-normal delay (median `delay_median_min` minutes, log-scale spread
/// `delay_sigma`). Only the earliest firing trigger of a ticket counts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Probability that the pattern leads to an escalation.
    pub p: f64,
    /// Median delay from the pattern to the escalation, in minutes.
    pub delay_median_min: f64,
    /// Log-scale standard deviation of the delay.
    pub delay_sigma: f64,
}

impl Trigger {
    const fn new(p: f64, delay_median_min: f64, delay_sigma: f64) -> Self {
        Trigger {
            p,
            delay_median_min,
            delay_sigma,
        }
    }
}

/// The generative story's parameters (see `docs/harbor.md` for what each means and why the
/// default is plausible). None of them is fitted to a model's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Story {
    /// Median thread length in events (default 18).
    pub length_median: f64,
    /// 95th percentile of the thread length (default 112); with the median it fixes the
    /// log-normal's sigma = ln(p95 / median) / 1.645.
    pub length_p95: f64,
    /// Longest thread generated (default 2000 events).
    pub max_length: u32,
    /// Topic shares: technical, billing, account (default 0.50, 0.30, 0.20).
    pub topic_weights: [f64; 3],
    /// Opening priority shares for codes 1 (low) to 4 (urgent) (default 0.35, 0.40, 0.18, 0.07).
    pub priority_weights: [f64; 4],
    /// Share of technical tickets linked to a platform incident at opening (default 0.15).
    pub incident_share: f64,
    /// Mean and standard deviation of a customer's initial mood (default 0.1, 0.3).
    pub mood: (f64, f64),
    /// Standard deviation of one message's sentiment around the mood (default 0.3).
    pub sentiment_noise: f64,
    /// Probability that an SLA tick opens a breach storm during shift hours at priority ≤ 2;
    /// doubled off hours and raised by half per priority step above 2 (default 0.05).
    pub storm_share: f64,
    /// `refund_approved` followed later by `chargeback_filed` (default p 0.6, 60 min).
    pub dispute: Trigger,
    /// `chargeback_filed` with no refund before it; cancelled by a later refund
    /// (default p 0.05, 240 min).
    pub chargeback: Trigger,
    /// `reopened` in a ticket linked to an incident at opening (default p 0.5, 90 min).
    pub incident_reopen: Trigger,
    /// `reopened` in any other ticket (default p 0.03, 180 min).
    pub reopen: Trigger,
    /// `burst_ticks` SLA ticks within `burst_window_min` minutes (default p 0.45, 45 min).
    pub sla_burst: Trigger,
    /// SLA ticks that make a burst (default 3).
    pub burst_ticks: u32,
    /// Window of a burst in minutes (default 120).
    pub burst_window_min: f64,
    /// A customer message with sentiment at or below `angry_below` (default p 0.05, 120 min).
    pub angry_message: Trigger,
    /// Sentiment threshold of an angry message (default -0.75).
    pub angry_below: f64,
    /// `priority_raised` to code 4 (default p 0.08, 60 min).
    pub urgent: Trigger,
    /// Unexplained escalations: `p` is per event (default 0.0004, 180 min, sigma 1.0).
    pub background: Trigger,
    /// Share of escalated tickets that end at the escalation (default 0.2).
    pub stop_after_escalation: f64,
    /// Share of continuing escalated tickets whose next event is Tier 3 taking the ticket, an
    /// `assignment_change` (default 0.8).
    pub tier3_pickup: f64,
}

impl Default for Story {
    fn default() -> Self {
        Story {
            length_median: 18.0,
            length_p95: 112.0,
            max_length: 2000,
            topic_weights: [0.50, 0.30, 0.20],
            priority_weights: [0.35, 0.40, 0.18, 0.07],
            incident_share: 0.10,
            mood: (0.1, 0.3),
            sentiment_noise: 0.3,
            storm_share: 0.006,
            dispute: Trigger::new(0.6, 60.0, 0.6),
            chargeback: Trigger::new(0.05, 240.0, 0.8),
            incident_reopen: Trigger::new(0.5, 90.0, 0.6),
            reopen: Trigger::new(0.012, 180.0, 0.8),
            sla_burst: Trigger::new(0.35, 45.0, 0.6),
            burst_ticks: 3,
            burst_window_min: 120.0,
            angry_message: Trigger::new(0.04, 120.0, 0.8),
            angry_below: -0.8,
            urgent: Trigger::new(0.03, 60.0, 0.8),
            background: Trigger::new(0.00007, 180.0, 1.0),
            stop_after_escalation: 0.2,
            tier3_pickup: 0.8,
        }
    }
}

impl Story {
    /// Log-normal sigma of the thread length.
    pub fn length_sigma(&self) -> f64 {
        (self.length_p95 / self.length_median).ln() / 1.645
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let prob = |name: &'static str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err((name, format!("{p} is not a probability")))
            }
        };
        let positive = |name: &'static str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err((name, format!("{v} must be positive")))
            }
        };
        let weights = |name: &'static str, w: &[f64]| {
            if w.iter().all(|&x| x >= 0.0 && x.is_finite()) && w.iter().sum::<f64>() > 0.0 {
                Ok(())
            } else {
                Err((name, format!("{w:?} must be non-negative with a positive sum")))
            }
        };
        positive("length_median", self.length_median)?;
        if !(self.length_p95 > self.length_median && self.length_p95.is_finite()) {
            return Err(("length_p95", format!("{} must exceed length_median", self.length_p95)));
        }
        if self.max_length == 0 {
            return Err(("max_length", "must be at least 1".into()));
        }
        weights("topic_weights", &self.topic_weights)?;
        weights("priority_weights", &self.priority_weights)?;
        prob("incident_share", self.incident_share)?;
        prob("storm_share", self.storm_share)?;
        prob("stop_after_escalation", self.stop_after_escalation)?;
        prob("tier3_pickup", self.tier3_pickup)?;
        positive("mood.1", self.mood.1)?;
        positive("sentiment_noise", self.sentiment_noise)?;
        positive("burst_window_min", self.burst_window_min)?;
        if self.burst_ticks < 2 {
            return Err(("burst_ticks", "must be at least 2".into()));
        }
        for (name, t) in [
            ("dispute", self.dispute),
            ("chargeback", self.chargeback),
            ("incident_reopen", self.incident_reopen),
            ("reopen", self.reopen),
            ("sla_burst", self.sla_burst),
            ("angry_message", self.angry_message),
            ("urgent", self.urgent),
            ("background", self.background),
        ] {
            prob(name, t.p)?;
            positive(name, t.delay_median_min)?;
            if !(t.delay_sigma >= 0.0 && t.delay_sigma.is_finite()) {
                return Err((name, format!("delay_sigma {} must be non-negative", t.delay_sigma)));
            }
        }
        Ok(())
    }
}
