//! Experiment: how high can any model's holdout AUC be on Harbor tickets? A "trigger oracle"
//! scores each holdout cut with the generator's own escalation story, and its AUC is set beside
//! the BiGRU's and the GBDT's on the same cuts.
//!
//! `cargo run --release -p recur --example harbor_oracle -- TICKETS SEED [RUN/holdout_scores.csv]`
//!
//! The oracle knows every parameter of the story ([`Story`]: which patterns start an escalation
//! clock, each clock's probability and log-normal delay, the background risk per priority) and
//! the one latent fact a model has to infer, whether the ticket is incident-linked. It sees the
//! visible prefix only. For every clock the prefix may have started (a very negative customer
//! message, the SLA tick that makes a burst, a raise to urgent, a chargeback with or without a
//! refund before it, a later refund cancelling the plain chargeback's clock, a reopening, and
//! the background risk of every event), it computes the probability that the clock rings in
//! the label window `(cut, cut + 4 h]`, given that it has not rung by the cut (the ticket has
//! not escalated: the cut is a sample):
//!
//! ```text
//! q = p · (F(cut + 4 h − τ) − F(cut − τ)) / (1 − p · F(cut − τ))
//! ```
//!
//! with `τ` the trigger's time and `F` its delay's CDF. A breach storm under way at the cut
//! adds the burst clock its third tick will start. The score is `1 − Π (1 − q)`. It leaves out
//! other clocks that events after the cut could start inside the window and most of the
//! information in the event timing, so it is a strong scorer, not the exact Bayes posterior; a
//! model that learned those as well could beat it slightly. Its AUC is where the order and timing signal that the story puts in the
//! prefix runs out.
//!
//! It also trains the GBDT on the 62 aggregates plus the oracle's score as one more column:
//! what the aggregates still add to the story's own probability (for example the customer's
//! latent mood, which makes a future angry message likelier).
//!
//! With a demo run's `holdout_scores.csv` (from `recur demo --tickets TICKETS --seed SEED`) the
//! BiGRU's and the GBDT's scores are joined on `(ticket_id, cut_ms)` and all three are compared
//! on the same cuts, overall and per escalation cause (each cause's positives against every
//! negative).

use std::collections::HashMap;

use recur::recipe::escalation::{self, EscalationConfig};
use recur_baseline::{train_with_validation, RowMatrix};
use recur_data::aggregate::AggregateFeaturizer;
use recur_data::features::Preprocessor;
use recur_data::harbor::{cause_subsets, generate_annotated, HarborConfig, Story, Trigger};
use recur_data::labels::Sample;
use recur_data::schema::Ticket;
use recur_train::metrics::roc_auc;

/// Background risk per priority code 1–4, relative to the story's `background.p` (as in the
/// generator and docs/harbor.md).
const PRIORITY_RISK: [f64; 4] = [0.6, 1.0, 1.6, 2.5];
const MINUTE_MS: f64 = 60_000.0;

/// `erfc` (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let r = poly * (-z * z).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// CDF of the trigger's delay (log-normal: median `delay_median_min` minutes, `delay_sigma`)
/// at `ms` milliseconds.
fn delay_cdf(tr: &Trigger, ms: f64) -> f64 {
    if ms <= 0.0 {
        return 0.0;
    }
    let z = (ms / MINUTE_MS / tr.delay_median_min).ln() / tr.delay_sigma;
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The oracle's probability that the ticket escalates in `(cut, cut + horizon]`, from the
/// first `n` events and the latent incident flag.
fn oracle(story: &Story, ticket: &Ticket, n: usize, incident: bool, horizon_ms: i64) -> f64 {
    let ev = &ticket.events[..n];
    let cut = ev[n - 1].timestamp_ms;
    // (trigger, time, whether it is a plain-chargeback clock that a refund cancels)
    let mut clocks: Vec<(Trigger, i64, bool)> = Vec::new();
    let mut refunds = 0;
    let mut sla: Vec<i64> = Vec::new();
    let window = (story.burst_window_min * MINUTE_MS) as i64;
    for e in ev {
        let t = e.timestamp_ms;
        let priority = e.numeric[0];
        match e.event_type.as_str() {
            "customer_message" if e.numeric[1] <= story.angry_below => clocks.push((story.angry_message, t, false)),
            "sla_tick" => {
                sla.push(t);
                if sla.iter().rev().take_while(|&&x| t - x <= window).count() == story.burst_ticks as usize {
                    clocks.push((story.sla_burst, t, false));
                }
            }
            "priority_raised" if priority == 4.0 => clocks.push((story.urgent, t, false)),
            "refund_approved" => {
                refunds += 1;
                clocks.retain(|c| !c.2);
            }
            "chargeback_filed" if refunds > 0 => clocks.push((story.dispute, t, false)),
            "chargeback_filed" => clocks.push((story.chargeback, t, true)),
            "reopened" if incident => clocks.push((story.incident_reopen, t, false)),
            "reopened" => clocks.push((story.reopen, t, false)),
            _ => {}
        }
        let risk = PRIORITY_RISK[(priority as usize).clamp(1, 4) - 1];
        let bg = Trigger {
            p: story.background.p * risk,
            ..story.background
        };
        clocks.push((bg, t, false));
    }
    // A breach storm under way (3–5 SLA ticks 10–40 minutes apart, always making a burst at its
    // third tick): its burst clock is still to come. Two ticks that close are a storm; a
    // single tick starts one with the story's storm probability (×1.5 for off-shift hours on
    // average, ×1.5 per priority step above 2).
    let mut k = 0;
    if ev[n - 1].event_type == "sla_tick" {
        k = 1;
        while k < n
            && ev[n - 1 - k].event_type == "sla_tick"
            && (10..=41).contains(&((ev[n - k].timestamp_ms - ev[n - 1 - k].timestamp_ms) / 60_000))
        {
            k += 1;
        }
    }
    let mut quiet = 1.0;
    if k == 1 || k == 2 {
        let priority = ev[n - 1].numeric[0];
        let p_storm = if k == 2 {
            1.0
        } else {
            (story.storm_share * 1.5 * (1.0 + 0.5 * (priority - 2.0).max(0.0))).min(1.0)
        };
        let lead = (3 - k) as f64 * 25.0 * MINUTE_MS;
        quiet *= 1.0 - p_storm * story.sla_burst.p * delay_cdf(&story.sla_burst, horizon_ms as f64 - lead);
    }
    for (tr, tau, _) in clocks {
        let (a, b) = ((cut - tau) as f64, (cut + horizon_ms - tau) as f64);
        let fa = delay_cdf(&tr, a);
        let q = tr.p * (delay_cdf(&tr, b) - fa) / (1.0 - tr.p * fa);
        quiet *= 1.0 - q;
    }
    1.0 - quiet
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let tickets: usize = a.first().map_or(20000, |s| s.parse().expect("TICKETS"));
    let seed: u64 = a.get(1).map_or(1, |s| s.parse().expect("SEED"));
    let hcfg = HarborConfig::new(tickets, seed);
    let cfg = EscalationConfig::default();
    let (log, stories) = generate_annotated(&hcfg);
    let split = recur_data::split::split_log(&log, &cfg.split).unwrap();
    let s = escalation::samples(&cfg, &log, &split).unwrap();
    let horizon = cfg.labels.horizon_ms;
    let y: Vec<bool> = s.holdout.iter().map(|x| x.label).collect();
    let scores = |v: &[Sample]| -> Vec<f64> {
        v.iter()
            .map(|x| {
                oracle(
                    &hcfg.story,
                    &log.tickets[x.ticket],
                    x.prefix_len,
                    stories[x.ticket].incident,
                    horizon,
                )
            })
            .collect()
    };
    let po = scores(&s.holdout);
    // The GBDT on the 62 aggregates plus the oracle's score as one more column: what the
    // aggregates add to the story's own probability.
    let pre = Preprocessor::fit(&log, &s.train, cfg.features.clone()).unwrap();
    let agg = AggregateFeaturizer::from_preprocessor(&pre);
    let with_oracle = |v: &[Sample]| -> (Vec<f64>, usize) {
        let m = agg.matrix(&log, v);
        let o = scores(v);
        let data = (0..m.n_rows)
            .flat_map(|r| m.data[r * m.n_cols..(r + 1) * m.n_cols].iter().copied().chain([o[r]]))
            .collect();
        (data, m.n_rows)
    };
    let cols = agg.names().len() + 1;
    let ((xt, nt), (xv, nv), (xh, nh)) = (
        with_oracle(&s.train),
        with_oracle(&s.validation),
        with_oracle(&s.holdout),
    );
    let labels = |v: &[Sample]| v.iter().map(|x| x.label).collect::<Vec<bool>>();
    let m = train_with_validation(
        &RowMatrix::new(&xt, nt, cols).unwrap(),
        &labels(&s.train),
        &RowMatrix::new(&xv, nv, cols).unwrap(),
        &labels(&s.validation),
        &cfg.gbdt,
    )
    .unwrap();
    let pgo = m.predict_proba(&RowMatrix::new(&xh, nh, cols).unwrap()).unwrap();
    let mut systems: Vec<(&str, Vec<f64>)> = vec![("oracle", po), ("GBDT+oracle", pgo)];
    if let Some(path) = a.get(2) {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rows: HashMap<(String, i64), (f64, f64)> = HashMap::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let num = |k: usize| f[k].parse::<f64>().unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
            rows.insert((f[0].to_string(), f[1].parse().unwrap()), (num(3), num(4)));
        }
        assert_eq!(
            rows.len(),
            s.holdout.len(),
            "{path} is not this holdout (tickets/seed?)"
        );
        let get = |x: &Sample| rows[&(log.tickets[x.ticket].id.clone(), x.cut_ms)];
        systems.push(("BiGRU", s.holdout.iter().map(|x| get(x).0).collect()));
        systems.push(("GBDT", s.holdout.iter().map(|x| get(x).1).collect()));
    }
    let pos = y.iter().filter(|&&v| v).count();
    println!(
        "{tickets} tickets, seed {seed}: {} holdout cuts, {pos} positive",
        y.len()
    );
    let line = |label: &str, keep: &[usize]| {
        let yy: Vec<bool> = keep.iter().map(|&i| y[i]).collect();
        let n = yy.iter().filter(|&&v| v).count();
        let mut out = format!("  {label:<28} {n:>5} positives:");
        for (name, p) in &systems {
            let pp: Vec<f64> = keep.iter().map(|&i| p[i]).collect();
            out += &format!("  {name} {:.4}", roc_auc(&yy, &pp).unwrap());
        }
        println!("{out}");
    };
    line("all", &(0..y.len()).collect::<Vec<_>>());
    for (c, keep) in cause_subsets(&s.holdout, &stories) {
        line(&c, &keep);
    }
}
