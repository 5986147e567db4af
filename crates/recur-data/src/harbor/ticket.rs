//! One ticket's life: a latent state (topic, incident link, priority, customer mood, pending
//! escalation clocks) that emits events one at a time and raises the escalation time.

use rand_chacha::ChaCha8Rng;

use super::calendar::{agent_time, off_hours, Calendar};
use super::params::{Story, Trigger};
use super::sample::{chance, int_in, lognormal, normal, pick};
use super::{Cause, TicketStory, Topic, EVENT_TYPES};
use crate::schema::Event;

/// Event kinds, in the order of [`EVENT_TYPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Opened,
    CustomerMessage,
    AgentReply,
    StatusChange,
    SlaTick,
    IntegrationWebhook,
    PriorityRaised,
    RefundApproved,
    ChargebackFiled,
    Reopened,
    InternalNote,
    AssignmentChange,
}

const KINDS: [Kind; 12] = [
    Kind::Opened,
    Kind::CustomerMessage,
    Kind::AgentReply,
    Kind::StatusChange,
    Kind::SlaTick,
    Kind::IntegrationWebhook,
    Kind::PriorityRaised,
    Kind::RefundApproved,
    Kind::ChargebackFiled,
    Kind::Reopened,
    Kind::InternalNote,
    Kind::AssignmentChange,
];

/// Base rate of each next event per topic (technical, billing, account), before the
/// adjustments for the previous event and the ticket's state.
const BASE_WEIGHTS: [[f64; 3]; 12] = [
    [0.0, 0.0, 0.0],          // opened: only first
    [0.24, 0.24, 0.24],       // customer_message
    [0.24, 0.24, 0.24],       // agent_reply
    [0.09, 0.09, 0.09],       // status_change
    [0.055, 0.055, 0.055],    // sla_tick
    [0.07, 0.015, 0.02],      // integration_webhook
    [0.012, 0.01, 0.01],      // priority_raised
    [0.002, 0.03, 0.006],     // refund_approved
    [0.0002, 0.0025, 0.0008], // chargeback_filed
    [0.006, 0.005, 0.005],    // reopened
    [0.10, 0.09, 0.09],       // internal_note
    [0.05, 0.04, 0.05],       // assignment_change
];

/// Gap before an event of each kind: (median minutes, log-scale sigma, done by an agent).
const GAPS: [(f64, f64, bool); 12] = [
    (0.0, 0.0, false),    // opened
    (150.0, 1.4, false),  // customer_message: customers answer in minutes to days
    (45.0, 1.1, true),    // agent_reply
    (10.0, 1.2, true),    // status_change
    (240.0, 0.6, false),  // sla_tick: timers, around the clock
    (25.0, 1.6, false),   // integration_webhook
    (40.0, 1.0, true),    // priority_raised
    (360.0, 0.9, true),   // refund_approved: needs an approval
    (1440.0, 0.9, false), // chargeback_filed: the bank's process
    (2880.0, 0.9, false), // reopened: the customer comes back days later
    (20.0, 1.0, true),    // internal_note
    (60.0, 1.0, true),    // assignment_change
];

/// Busy threads move faster: gaps scale with (length / median length)^-PACE_EXPONENT, within
/// PACE_RANGE, except for SLA timers, chargebacks and reopenings, which run on outside clocks.
const PACE_EXPONENT: f64 = 0.3;
const PACE_RANGE: (f64, f64) = (0.3, 1.5);
/// Agents act faster on higher priorities: gap factor per priority code 1–4.
const PRIORITY_SPEED: [f64; 4] = [1.0, 0.85, 0.65, 0.45];
/// Background escalation risk relative to priority 2, per priority code 1–4.
const PRIORITY_RISK: [f64; 4] = [0.6, 1.0, 1.6, 2.5];
/// Gap between the ticks of a breach storm, minutes (uniform).
const STORM_GAP_MIN: (i64, i64) = (10, 40);
/// Ticks in a breach storm (uniform).
const STORM_TICKS: (i64, i64) = (3, 5);
/// Delay of the incident webhook after opening: median minutes, sigma.
const INCIDENT_LINK_GAP: (f64, f64) = (2.0, 0.8);
/// Delay of Tier 3's pickup after an escalation: median minutes, sigma.
const PICKUP_GAP: (f64, f64) = (20.0, 0.7);
const MINUTE_MS: f64 = 60_000.0;
const MIN_GAP_MS: i64 = 5_000;
const MAX_GAP_MS: i64 = 30 * 24 * 3_600_000;

/// A generated ticket before ids are assigned.
pub(super) struct Simulated {
    pub(super) events: Vec<Event>,
    pub(super) escalated_at_ms: Option<i64>,
    pub(super) story: TicketStory,
}

struct Clock {
    at: i64,
    cause: Cause,
}

struct Sim<'a> {
    rng: ChaCha8Rng,
    story: &'a Story,
    topic: Topic,
    incident: bool,
    priority: u8,
    mood: f64,
    /// Gap factor from the thread length.
    pace: f64,
    t: i64,
    prev: Kind,
    refunds: u32,
    chargebacks: u32,
    sla_ticks: Vec<i64>,
    clocks: Vec<Clock>,
    escalated: Option<Clock>,
    events: Vec<Event>,
}

/// Simulates one ticket with its own RNG stream.
pub(super) fn simulate(rng: ChaCha8Rng, story: &Story, calendar: &Calendar) -> Simulated {
    let mut sim = Sim::open(rng, story, calendar);
    let n = sim.length();
    sim.emit(Kind::Opened, sim.t);
    if sim.incident && n > 1 {
        let t = sim.t + sim.minutes(INCIDENT_LINK_GAP.0, INCIDENT_LINK_GAP.1);
        sim.emit(Kind::IntegrationWebhook, t);
    }
    while sim.events.len() < n {
        if !sim.step(n) {
            break;
        }
    }
    sim.finish()
}

impl<'a> Sim<'a> {
    fn open(mut rng: ChaCha8Rng, story: &'a Story, calendar: &Calendar) -> Self {
        let t = calendar.opening_time(&mut rng);
        let topic = [Topic::Technical, Topic::Billing, Topic::Account][pick(&mut rng, &story.topic_weights)];
        let incident = topic == Topic::Technical && chance(&mut rng, story.incident_share);
        let priority = pick(&mut rng, &story.priority_weights) as u8 + 1;
        let mood = (story.mood.0 + story.mood.1 * normal(&mut rng)).clamp(-1.0, 1.0);
        Sim {
            rng,
            story,
            topic,
            incident,
            priority,
            mood,
            pace: 1.0,
            t,
            prev: Kind::Opened,
            refunds: 0,
            chargebacks: 0,
            sla_ticks: Vec::new(),
            clocks: Vec::new(),
            escalated: None,
            events: Vec::new(),
        }
    }

    /// Thread length: log-normal with the story's median and p95, at least 1 event.
    fn length(&mut self) -> usize {
        let z = normal(&mut self.rng);
        let n = (self.story.length_median * (self.story.length_sigma() * z).exp()).round();
        let n = n.clamp(1.0, f64::from(self.story.max_length));
        self.pace = (n / self.story.length_median)
            .powf(-PACE_EXPONENT)
            .clamp(PACE_RANGE.0, PACE_RANGE.1);
        n as usize
    }

    fn minutes(&mut self, median: f64, sigma: f64) -> i64 {
        ((lognormal(&mut self.rng, median, sigma) * MINUTE_MS) as i64).clamp(MIN_GAP_MS, MAX_GAP_MS)
    }

    /// Plans the next event (or storm of SLA ticks) and emits it; `false` when the ticket ends.
    fn step(&mut self, n: usize) -> bool {
        let kind = self.next_kind();
        let mut t = self.next_time(kind);
        let ticks = if kind == Kind::SlaTick && self.storm_starts(t) {
            int_in(&mut self.rng, STORM_TICKS.0, STORM_TICKS.1)
        } else {
            1
        };
        for i in 0..ticks {
            if i > 0 {
                let minutes = int_in(&mut self.rng, STORM_GAP_MIN.0, STORM_GAP_MIN.1);
                t += minutes * 60_000 + int_in(&mut self.rng, 0, 59_999);
            }
            if let Some(at) = self.due_escalation(t) {
                return self.escalate(at);
            }
            self.emit(kind, t);
            self.react(kind, t);
            if self.events.len() >= n {
                break;
            }
        }
        true
    }

    fn next_kind(&mut self) -> Kind {
        let topic = self.topic as usize;
        let mut w: [f64; 12] = std::array::from_fn(|k| BASE_WEIGHTS[k][topic]);
        let mut scale = |k: Kind, f: f64| w[k as usize] *= f;
        match self.prev {
            Kind::CustomerMessage => {
                scale(Kind::AgentReply, 2.0);
                scale(Kind::CustomerMessage, 0.6);
            }
            Kind::AgentReply => {
                scale(Kind::CustomerMessage, 1.6);
                scale(Kind::AgentReply, 0.5);
                scale(Kind::StatusChange, 1.5);
            }
            Kind::SlaTick => {
                scale(Kind::AgentReply, 1.6);
                scale(Kind::AssignmentChange, 1.5);
            }
            Kind::StatusChange => scale(Kind::Reopened, 3.0),
            Kind::RefundApproved => scale(Kind::CustomerMessage, 1.5),
            _ => {}
        }
        if self.priority >= 4 {
            w[Kind::PriorityRaised as usize] = 0.0;
        }
        if self.refunds >= 2 {
            w[Kind::RefundApproved as usize] = 0.0;
        }
        if self.chargebacks >= 1 {
            w[Kind::ChargebackFiled as usize] = 0.0;
        }
        KINDS[pick(&mut self.rng, &w)]
    }

    /// When an event of `kind` following the current one happens.
    fn next_time(&mut self, kind: Kind) -> i64 {
        let (median, sigma, by_agent) = GAPS[kind as usize];
        let mut median = median;
        if by_agent {
            median *= PRIORITY_SPEED[usize::from(self.priority - 1)];
        }
        if !matches!(kind, Kind::SlaTick | Kind::ChargebackFiled | Kind::Reopened) {
            median *= self.pace;
        }
        let t = self.t + self.minutes(median, sigma);
        if by_agent {
            agent_time(&mut self.rng, t)
        } else {
            t
        }
    }

    /// Whether an SLA tick at `t` opens a breach storm: likelier off hours and at high priority.
    fn storm_starts(&mut self, t: i64) -> bool {
        let mut p = self.story.storm_share;
        if off_hours(t) {
            p *= 2.0;
        }
        p *= 1.0 + 0.5 * f64::from(self.priority.saturating_sub(2));
        chance(&mut self.rng, p.min(1.0))
    }

    fn emit(&mut self, kind: Kind, t: i64) {
        let sentiment = if kind == Kind::CustomerMessage {
            let s = (self.mood + self.story.sentiment_noise * normal(&mut self.rng)).clamp(-1.0, 1.0);
            self.mood = 0.8 * self.mood + 0.2 * s;
            (s * 1000.0).round() / 1000.0
        } else {
            f64::NAN
        };
        if kind == Kind::PriorityRaised {
            self.priority = (self.priority + 1).min(4);
        }
        self.events.push(Event {
            timestamp_ms: t,
            event_type: EVENT_TYPES[kind as usize].to_string(),
            numeric: vec![f64::from(self.priority), sentiment],
        });
        self.t = t;
        self.prev = kind;
    }

    /// The event's effect on the latent state, and the triggers it sets off.
    fn react(&mut self, kind: Kind, t: i64) {
        let s = self.story;
        let mood_shift = match kind {
            Kind::AgentReply => 0.03,
            Kind::SlaTick => -0.05,
            Kind::RefundApproved => 0.15,
            Kind::Reopened | Kind::ChargebackFiled => -0.1,
            Kind::PriorityRaised => -0.03,
            _ => 0.0,
        };
        self.mood = (self.mood + mood_shift).clamp(-1.0, 1.0);
        match kind {
            Kind::CustomerMessage => {
                let sentiment = self.events.last().map_or(0.0, |e| e.numeric[1]);
                if sentiment <= s.angry_below {
                    self.trigger(s.angry_message, Cause::AngryMessage);
                }
            }
            Kind::SlaTick => {
                self.sla_ticks.push(t);
                let window = (s.burst_window_min * MINUTE_MS) as i64;
                let recent = self.sla_ticks.iter().rev().take_while(|&&x| t - x <= window).count();
                if recent == s.burst_ticks as usize {
                    self.trigger(s.sla_burst, Cause::SlaBurst);
                }
            }
            Kind::PriorityRaised if self.priority == 4 => self.trigger(s.urgent, Cause::UrgentPriority),
            Kind::RefundApproved => {
                self.refunds += 1;
                self.clocks.retain(|c| c.cause != Cause::Chargeback);
            }
            Kind::ChargebackFiled => {
                self.chargebacks += 1;
                if self.refunds > 0 {
                    self.trigger(s.dispute, Cause::Dispute);
                } else {
                    self.trigger(s.chargeback, Cause::Chargeback);
                }
            }
            Kind::Reopened if self.incident => self.trigger(s.incident_reopen, Cause::IncidentReopen),
            Kind::Reopened => self.trigger(s.reopen, Cause::Reopen),
            _ => {}
        }
        let background = Trigger {
            p: s.background.p * PRIORITY_RISK[usize::from(self.priority - 1)],
            ..s.background
        };
        self.trigger(background, Cause::Background);
    }

    /// With probability `p`, starts a clock that escalates the ticket after the trigger's delay.
    fn trigger(&mut self, trigger: Trigger, cause: Cause) {
        if self.escalated.is_some() || !chance(&mut self.rng, trigger.p) {
            return;
        }
        let at = self.t + self.minutes(trigger.delay_median_min, trigger.delay_sigma);
        self.clocks.push(Clock { at, cause });
    }

    /// The earliest pending clock if it rings before `t`.
    fn due_escalation(&self, t: i64) -> Option<usize> {
        if self.escalated.is_some() {
            return None;
        }
        let (i, c) = self.clocks.iter().enumerate().min_by_key(|(_, c)| c.at)?;
        (c.at <= t).then_some(i)
    }

    /// Escalates on clock `i`; the ticket then ends, or Tier 3 usually picks it up next.
    /// Returns whether the ticket goes on.
    fn escalate(&mut self, i: usize) -> bool {
        let clock = self.clocks.swap_remove(i);
        let at = clock.at;
        self.escalated = Some(clock);
        if chance(&mut self.rng, self.story.stop_after_escalation) {
            return false;
        }
        if chance(&mut self.rng, self.story.tier3_pickup) {
            let t = at.max(self.t) + self.minutes(PICKUP_GAP.0, PICKUP_GAP.1);
            self.emit(Kind::AssignmentChange, t);
        }
        true
    }

    fn finish(mut self) -> Simulated {
        if self.escalated.is_none() {
            if let Some(i) = self.clocks.iter().enumerate().min_by_key(|(_, c)| c.at).map(|(i, _)| i) {
                self.escalated = Some(self.clocks.swap_remove(i));
            }
        }
        Simulated {
            events: self.events,
            escalated_at_ms: self.escalated.as_ref().map(|c| c.at),
            story: TicketStory {
                topic: self.topic,
                incident: self.incident,
                cause: self.escalated.map(|c| c.cause),
            },
        }
    }
}
