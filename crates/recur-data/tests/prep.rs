//! Data preparation end to end on hand-made logs: time split, labels at the horizon, leakage
//! guards, fitted vocabulary and scaler, per-step and aggregated features.

use proptest::prelude::*;
use recur_data::aggregate::AggregateFeaturizer;
use recur_data::features::{sequence_features, FeatureConfig, Preprocessor, TIME_CHANNELS, UNKNOWN_TYPE};
use recur_data::labels::{
    label_at, valid_cuts, visible_prefix_len, CutPolicy, LabelConfig, LabelError, Labeler, Sample,
};
use recur_data::schema::{DAY_MS, HOUR_MS};
use recur_data::split::{
    split_log, SplitConfig, SplitError, SplitPart, SplitStrategy, SplitWarning, Splitter, RANDOM_SPLIT_WARNING,
};
use recur_data::{Event, EventLog, Ticket};

const MIN_MS: i64 = 60_000;
/// 2024-01-01T00:00:00Z, a Monday.
const T0: i64 = 1_704_067_200_000;

fn ev(t: i64, kind: &str, priority: f64, sentiment: f64) -> Event {
    Event {
        timestamp_ms: t,
        event_type: kind.into(),
        numeric: vec![priority, sentiment],
    }
}

fn log(tickets: Vec<Ticket>) -> EventLog {
    EventLog {
        numeric_columns: vec!["priority".into(), "sentiment".into()],
        tickets,
    }
}

/// A ticket opened at `open` with an event every `gap` ms cycling through `kinds`.
fn ticket(id: &str, open: i64, n: usize, gap: i64, kinds: &[&str], escalated_at_ms: Option<i64>) -> Ticket {
    let events = (0..n)
        .map(|i| {
            let sentiment = if i % 4 == 3 { f64::NAN } else { (i as f64 * 0.37).sin() };
            ev(
                open + i as i64 * gap,
                kinds[i % kinds.len()],
                1.0 + (i % 3) as f64,
                sentiment,
            )
        })
        .collect();
    Ticket {
        id: id.into(),
        events,
        escalated_at_ms,
    }
}

/// 200 days of tickets, one opened every 12 hours, each with 12 events 45 min apart (long
/// enough to straddle window boundaries); every fifth escalates 30 min after its 8th event.
/// Holdout tickets also use a type never seen before the holdout window.
fn year_log() -> EventLog {
    let kinds = ["opened", "customer_message", "agent_reply", "status_change", "sla_tick"];
    let holdout_kinds = ["opened", "customer_message", "chargeback_filed", "sla_tick"];
    let tickets = (0..400)
        .map(|i| {
            let open = T0 + i as i64 * 12 * HOUR_MS;
            let late = open >= T0 + 200 * DAY_MS - 90 * DAY_MS;
            let esc = (i % 5 == 0).then_some(open + 7 * 45 * MIN_MS + 30 * MIN_MS);
            ticket(
                &format!("t{i}"),
                open,
                12,
                45 * MIN_MS,
                if late { &holdout_kinds } else { &kinds },
                esc,
            )
        })
        .collect();
    log(tickets)
}

fn every_event() -> Labeler {
    Labeler::new(LabelConfig {
        policy: CutPolicy::EveryEvent,
        ..LabelConfig::default()
    })
    .unwrap()
}

// ---------------------------------------------------------------- labels

#[test]
fn label_is_positive_at_exactly_the_horizon_and_negative_one_ms_later() {
    let h = 4 * HOUR_MS;
    let cut = T0 + HOUR_MS;
    let at = |esc: i64| Ticket {
        id: "a".into(),
        events: vec![ev(cut, "opened", 1.0, 0.0)],
        escalated_at_ms: Some(esc),
    };
    assert_eq!(label_at(&at(cut + h), cut, h), Some(true), "exactly 4 h after the cut");
    assert_eq!(
        label_at(&at(cut + h + 1), cut, h),
        Some(false),
        "4 h + 1 ms after the cut"
    );
    assert_eq!(label_at(&at(cut + 1), cut, h), Some(true), "1 ms after the cut");
    assert_eq!(label_at(&at(cut), cut, h), None, "escalated at the cut: not a sample");
    assert_eq!(
        label_at(&at(cut - 1), cut, h),
        None,
        "escalated before the cut: not a sample"
    );
    let never = Ticket {
        escalated_at_ms: None,
        ..at(0)
    };
    assert_eq!(label_at(&never, cut, h), Some(false));
}

#[test]
fn labeler_drops_cuts_at_or_after_the_escalation() {
    // Events at 0, 1 h, 2 h, 3 h, 6 h; escalation at 5 h.
    let times = [0, 1, 2, 3, 6].map(|h| T0 + h * HOUR_MS);
    let events = times.iter().map(|&t| ev(t, "x", 1.0, 0.0)).collect();
    let l = log(vec![Ticket {
        id: "a".into(),
        events,
        escalated_at_ms: Some(T0 + 5 * HOUR_MS),
    }]);
    let samples = every_event().ticket_samples(&l, 0, None);
    let got: Vec<(usize, bool)> = samples.iter().map(|s| (s.prefix_len, s.label)).collect();
    // Cut at 0 h: 5 h > 4 h ahead → negative; 1 h: exactly 4 h → positive; 2 h, 3 h positive;
    // 6 h: after the escalation → no sample.
    assert_eq!(got, vec![(1, false), (2, true), (3, true), (4, true)]);
    every_event().check(&l, &samples, None).unwrap();
}

#[test]
fn simultaneous_events_are_one_cut_and_never_split() {
    let events = vec![
        ev(T0, "opened", 1.0, 0.0),
        ev(T0 + MIN_MS, "customer_message", 1.0, 0.0),
        ev(T0 + MIN_MS, "priority_raised", 3.0, 0.0),
        ev(T0 + MIN_MS, "agent_reply", 3.0, 0.0),
        ev(T0 + 2 * MIN_MS, "sla_tick", 3.0, 0.0),
    ];
    let t = Ticket {
        id: "a".into(),
        events,
        escalated_at_ms: None,
    };
    assert_eq!(valid_cuts(&t).collect::<Vec<_>>(), vec![1, 4, 5]);
    let l = log(vec![t]);
    for s in every_event().ticket_samples(&l, 0, None) {
        let ev = &l.tickets[0].events;
        assert!(ev[..s.prefix_len].iter().all(|e| e.timestamp_ms <= s.cut_ms));
        assert!(ev[s.prefix_len..].iter().all(|e| e.timestamp_ms > s.cut_ms));
        assert_eq!(visible_prefix_len(&l.tickets[0], s.cut_ms), s.prefix_len);
    }
}

#[test]
fn check_rejects_a_prefix_that_shows_an_event_after_the_cut() {
    let l = log(vec![ticket("a", T0, 5, HOUR_MS, &["x"], None)]);
    let bad = Sample {
        ticket: 0,
        prefix_len: 3,
        cut_ms: T0 + HOUR_MS,
        label: false,
    };
    assert!(matches!(
        every_event().check(&l, &[bad], None),
        Err(LabelError::Leak { .. })
    ));
    let good = Sample { prefix_len: 2, ..bad };
    every_event().check(&l, &[good], None).unwrap();
}

#[test]
fn cut_policies_choose_the_documented_cuts() {
    let l = log(vec![
        ticket("a", T0, 30, HOUR_MS, &["x"], None),
        ticket("b", T0, 3, HOUR_MS, &["x"], None),
    ]);
    let lens = |policy: CutPolicy, seed: u64, t: usize| -> Vec<usize> {
        let labeler = Labeler::new(LabelConfig {
            policy,
            seed,
            ..LabelConfig::default()
        })
        .unwrap();
        labeler
            .ticket_samples(&l, t, None)
            .iter()
            .map(|s| s.prefix_len)
            .collect()
    };
    assert_eq!(lens(CutPolicy::EveryKth { k: 10 }, 0, 0), vec![1, 11, 21]);
    assert_eq!(
        lens(
            CutPolicy::Fixed {
                prefix_lens: vec![2, 5, 99]
            },
            0,
            0
        ),
        vec![2, 5]
    );
    assert_eq!(LabelConfig::default().policy, CutPolicy::Sampled { max_per_ticket: 8 });
    let sampled = lens(CutPolicy::default(), 7, 0);
    assert_eq!(sampled.len(), 8);
    assert_eq!(sampled, lens(CutPolicy::default(), 7, 0), "same seed, same cuts");
    assert_ne!(sampled, lens(CutPolicy::default(), 8, 0), "another seed, other cuts");
    assert_eq!(
        lens(CutPolicy::default(), 7, 1),
        vec![1, 2, 3],
        "short tickets keep every cut"
    );
}

#[test]
fn label_config_errors_name_the_field() {
    let cases = [
        (
            "horizon_ms",
            LabelConfig {
                horizon_ms: 0,
                ..LabelConfig::default()
            },
        ),
        (
            "policy.k",
            LabelConfig {
                policy: CutPolicy::EveryKth { k: 0 },
                ..LabelConfig::default()
            },
        ),
        (
            "policy.max_per_ticket",
            LabelConfig {
                policy: CutPolicy::Sampled { max_per_ticket: 0 },
                ..LabelConfig::default()
            },
        ),
    ];
    for (name, config) in cases {
        match Labeler::new(config) {
            Err(LabelError::Config { field, .. }) => assert_eq!(field, name),
            other => panic!("{name}: expected a config error, got {other:?}"),
        }
    }
    let parsed: LabelConfig = serde_json::from_str(r#"{"policy": {"every_kth": {"k": 3}}}"#).unwrap();
    assert_eq!(parsed.policy, CutPolicy::EveryKth { k: 3 });
    assert_eq!(parsed.horizon_ms, 4 * HOUR_MS);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_sample_is_consistent_with_its_ticket(
        gaps in prop::collection::vec(0i64..3, 1..30),
        esc in prop::option::of(0i64..40),
        horizon in 1i64..10,
        window_end in prop::option::of(0i64..45),
    ) {
        let mut t = T0;
        let events = gaps.iter().map(|g| { t += g * HOUR_MS; ev(t, "x", 1.0, 0.0) }).collect();
        let l = log(vec![Ticket { id: "p".into(), events, escalated_at_ms: esc.map(|h| T0 + h * HOUR_MS) }]);
        let labeler = Labeler::new(LabelConfig {
            horizon_ms: horizon * HOUR_MS,
            policy: CutPolicy::EveryEvent,
            ..LabelConfig::default()
        }).unwrap();
        let end = window_end.map(|h| T0 + h * HOUR_MS);
        let samples = labeler.ticket_samples(&l, 0, end);
        prop_assert!(labeler.check(&l, &samples, end).is_ok());
        // Every valid cut before the escalation and inside the window is a sample.
        let expected = valid_cuts(&l.tickets[0])
            .filter(|&n| {
                let cut = l.tickets[0].events[n - 1].timestamp_ms;
                label_at(&l.tickets[0], cut, horizon * HOUR_MS).is_some()
                    && end.is_none_or(|e| cut + horizon * HOUR_MS <= e)
            })
            .count();
        prop_assert_eq!(samples.len(), expected);
    }
}

// ---------------------------------------------------------------- split

#[test]
fn time_split_assigns_tickets_by_opening_time() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let w = split.windows;
    let last_open = T0 + 399 * 12 * HOUR_MS;
    assert_eq!(w.holdout_end_ms, last_open + 1);
    assert_eq!(w.holdout_start_ms, last_open + 1 - 90 * DAY_MS);
    assert_eq!(
        (w.validation_start_ms, w.validation_end_ms),
        (w.holdout_start_ms - 30 * DAY_MS, w.holdout_start_ms)
    );
    assert_eq!(w.train_end_ms, w.validation_start_ms);
    for (part, lo, hi) in [
        (SplitPart::Train, i64::MIN, w.train_end_ms),
        (SplitPart::Validation, w.validation_start_ms, w.validation_end_ms),
        (SplitPart::Holdout, w.holdout_start_ms, w.holdout_end_ms),
    ] {
        assert!(!split.part(part).is_empty());
        assert!(
            split
                .part(part)
                .iter()
                .all(|&i| (lo..hi).contains(&l.tickets[i].opened_at_ms())),
            "{part}"
        );
    }
    let total = split.train.len() + split.validation.len() + split.holdout.len();
    assert_eq!(total, l.tickets.len());
    assert_eq!(split.holdout.len(), 180, "90 days × 2 tickets a day");
    assert_eq!(split.validation.len(), 60);
    assert!(split.warning.is_none());
    assert_eq!(split.window_end_ms(SplitPart::Train), Some(w.train_end_ms));
    assert_eq!(split.window_end_ms(SplitPart::Holdout), None);
}

#[test]
fn random_split_is_refused_without_force() {
    let config = SplitConfig {
        strategy: SplitStrategy::Random,
        ..SplitConfig::default()
    };
    let err = split_log(&year_log(), &config).unwrap_err();
    assert_eq!(err, SplitError::RandomRefused);
    assert!(err.to_string().contains("leak future information"), "{err}");
}

#[test]
fn forced_random_split_warns_and_keeps_the_time_split_sizes() {
    let l = year_log();
    let config = SplitConfig {
        strategy: SplitStrategy::Random,
        force_random: true,
        seed: 5,
        ..SplitConfig::default()
    };
    let split = split_log(&l, &config).unwrap();
    assert_eq!(split.warning, Some(SplitWarning::RandomSplit));
    assert_eq!(split.warning.unwrap().to_string(), RANDOM_SPLIT_WARNING);
    assert!(RANDOM_SPLIT_WARNING.contains("random splits leak future information into training"));
    let by_time = split_log(&l, &SplitConfig::default()).unwrap();
    assert_eq!(split.holdout.len(), by_time.holdout.len());
    assert_ne!(split.holdout, by_time.holdout);
    assert_eq!(
        split.window_end_ms(SplitPart::Train),
        None,
        "a random split bounds nothing"
    );
    assert_eq!(split, split_log(&l, &config).unwrap(), "seeded");
}

#[test]
fn split_config_errors_name_the_field() {
    for (name, config) in [
        (
            "holdout_days",
            SplitConfig {
                holdout_days: 0,
                ..SplitConfig::default()
            },
        ),
        (
            "validation_days",
            SplitConfig {
                validation_days: 0,
                ..SplitConfig::default()
            },
        ),
    ] {
        match Splitter::new(config) {
            Err(SplitError::Config { field, .. }) => assert_eq!(field, name),
            other => panic!("{name}: expected a config error, got {other:?}"),
        }
    }
    let parsed: SplitConfig = serde_json::from_str(r#"{"validation_days": 14}"#).unwrap();
    assert_eq!(
        (parsed.holdout_days, parsed.validation_days, parsed.force_random),
        (90, 14, false)
    );
    assert!(serde_json::from_str::<SplitConfig>(r#"{"holdout": 14}"#).is_err());
}

#[test]
fn windows_that_leave_a_part_empty_are_errors_naming_it() {
    // 100 days of openings: 90 + 30 days leave no training tickets.
    let short = log((0..100)
        .map(|d| ticket(&format!("t{d}"), T0 + d * DAY_MS, 2, HOUR_MS, &["x"], None))
        .collect());
    match split_log(&short, &SplitConfig::default()) {
        Err(SplitError::EmptyPart {
            part: SplitPart::Train, ..
        }) => {}
        other => panic!("expected an empty train part, got {other:?}"),
    }
    // Openings 200 days apart with nothing in between: the validation window is empty.
    let gap = log(vec![
        ticket("a", T0, 2, HOUR_MS, &["x"], None),
        ticket("b", T0 + 200 * DAY_MS, 2, HOUR_MS, &["x"], None),
    ]);
    let err = split_log(&gap, &SplitConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::EmptyPart {
                part: SplitPart::Validation,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("validation part is empty"), "{err}");
    assert_eq!(
        split_log(&log(vec![]), &SplitConfig::default()),
        Err(SplitError::EmptyLog)
    );
}

// ---------------------------------------------------------------- leakage guards

#[test]
fn no_training_or_validation_label_reaches_past_its_window() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let labeler = every_event();
    let samples = labeler.split_samples(&l, &split);
    let h = labeler.horizon_ms();
    for part in [SplitPart::Train, SplitPart::Validation] {
        let end = split.window_end_ms(part).unwrap();
        let s = samples.part(part);
        assert!(!s.is_empty());
        assert!(
            s.iter().all(|s| s.cut_ms + h <= end),
            "{part}: a label is only known after the window ends"
        );
        assert!(
            s.iter().all(|s| split.part(part).binary_search(&s.ticket).is_ok()),
            "{part}: foreign ticket"
        );
        labeler.check(&l, s, Some(end)).unwrap();
    }
    for &i in &split.holdout {
        assert!(
            samples.train.iter().chain(&samples.validation).all(|s| s.ticket != i),
            "holdout ticket {i} leaked"
        );
    }
    // The guard bites: tickets opened just before the train window ends lose their late cuts.
    let unguarded = labeler.samples(&l, &split.train, None);
    assert!(unguarded.len() > samples.train.len());
    assert!(unguarded.iter().any(|s| s.cut_ms + h > split.windows.train_end_ms));
}

/// Runs `f` on every cut of `l`, then again after scrambling everything after each cut
/// (types, numeric values, later timestamps and the escalation); true if any output changed.
fn sees_past_the_cut(l: &EventLog, f: impl Fn(&Ticket, usize) -> Vec<u64>) -> bool {
    l.tickets.iter().any(|t| {
        valid_cuts(t).any(|len| {
            let mut scrambled = t.clone();
            let cut = t.events[len - 1].timestamp_ms;
            for (k, e) in scrambled.events[len..].iter_mut().enumerate() {
                e.event_type = format!("future_{k}");
                e.numeric = vec![99.0 + k as f64, f64::NAN];
                e.timestamp_ms = cut + 1 + k as i64 * 7 * HOUR_MS;
            }
            scrambled.events.push(ev(cut + 1_000 * HOUR_MS, "closed", 5.0, -1.0));
            scrambled.escalated_at_ms = Some(cut + 1);
            f(t, len) != f(&scrambled, len)
        })
    })
}

fn bits32(v: &[f32]) -> impl Iterator<Item = u64> + '_ {
    v.iter().map(|x| u64::from(x.to_bits()))
}

#[test]
fn features_are_blind_to_events_after_the_cut() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let train = every_event().samples(&l, &split.train, split.window_end_ms(SplitPart::Train));
    let p = Preprocessor::fit(&l, &train, FeatureConfig::default()).unwrap();
    let agg = AggregateFeaturizer::from_preprocessor(&p);
    let sub = log(l.tickets[..30].to_vec());
    let seq = |t: &Ticket, len: usize| {
        let f = p.sequence_features(t, len);
        f.type_ids
            .iter()
            .map(|&i| u64::from(i))
            .chain(bits32(&f.scalars))
            .collect()
    };
    assert!(!sees_past_the_cut(&sub, seq), "sequence features peek past the cut");
    let flat = |t: &Ticket, len: usize| agg.features(t, len).iter().map(|x| x.to_bits()).collect();
    assert!(!sees_past_the_cut(&sub, flat), "aggregate features peek past the cut");
}

#[test]
fn the_blindness_check_catches_a_peeking_feature() {
    let l = log(l_tickets());
    // Looks at the next event's type: a classic off-by-one leak.
    let peek_next = |t: &Ticket, len: usize| vec![t.events.get(len).map_or(0, |e| e.event_type.len() as u64)];
    assert!(sees_past_the_cut(&l, peek_next));
    // Uses the ticket's full length.
    assert!(sees_past_the_cut(&l, |t: &Ticket, _| vec![t.events.len() as u64]));
    // Uses the escalation time.
    assert!(sees_past_the_cut(&l, |t: &Ticket, _| vec![
        t.escalated_at_ms.unwrap_or(0) as u64
    ]));
}

fn l_tickets() -> Vec<Ticket> {
    vec![ticket("a", T0, 6, HOUR_MS, &["opened", "agent_reply"], None)]
}

// ---------------------------------------------------------------- fitted preprocessing

#[test]
fn vocabulary_and_scaler_are_fitted_on_training_prefixes_only() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let labeler = every_event();
    let samples = labeler.split_samples(&l, &split);
    let p = Preprocessor::fit(&l, &samples.train, FeatureConfig::default()).unwrap();
    // `chargeback_filed` appears only in holdout tickets: unknown.
    assert_eq!(p.vocab.id("chargeback_filed"), 0);
    assert!(!p.vocab.types().iter().any(|t| t == "chargeback_filed"));
    let holdout_ticket = &l.tickets[split.holdout[0]];
    let f = p.sequence_features(holdout_ticket, holdout_ticket.events.len());
    let pos = holdout_ticket
        .events
        .iter()
        .position(|e| e.event_type == "chargeback_filed")
        .unwrap();
    assert_eq!(f.type_ids[pos], 0);
    assert_eq!(p.vocab.name(0), UNKNOWN_TYPE);
    assert_eq!(
        p.vocab.id("customer_message"),
        p.vocab.types().iter().position(|t| t == "customer_message").unwrap() as u32 + 1
    );

    // Changing everything outside the training prefixes changes neither vocabulary nor scaler.
    let mut other = l.clone();
    let visible: std::collections::BTreeMap<usize, usize> =
        samples.train.iter().fold(Default::default(), |mut m, s| {
            let e = m.entry(s.ticket).or_insert(0);
            *e = (*e).max(s.prefix_len);
            m
        });
    for (i, t) in other.tickets.iter_mut().enumerate() {
        let from = visible.get(&i).copied().unwrap_or(0);
        for e in &mut t.events[from..] {
            e.event_type = "holdout_only".into();
            e.numeric = vec![1e6, f64::NAN];
        }
    }
    assert_eq!(
        Preprocessor::fit(&other, &samples.train, FeatureConfig::default()).unwrap(),
        p
    );
    assert_eq!(p.vocab.id("holdout_only"), 0);
}

#[test]
fn preprocessor_round_trips_through_json_bit_exactly() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let train = Labeler::new(LabelConfig::default())
        .unwrap()
        .split_samples(&l, &split)
        .train;
    let p = Preprocessor::fit(
        &l,
        &train,
        FeatureConfig {
            min_count: 2,
            model_dim: 64,
        },
    )
    .unwrap();
    let json = p.to_json().unwrap();
    let back = Preprocessor::from_json(&json).unwrap();
    assert_eq!(back, p);
    for (a, b) in back.scaler.channels().iter().zip(p.scaler.channels()) {
        assert_eq!(
            (a.mean.to_bits(), a.std.to_bits()),
            (b.mean.to_bits(), b.std.to_bits()),
            "{}",
            a.name
        );
    }
    assert_eq!(back.to_json().unwrap(), json);
    for &i in &split.holdout[..5] {
        let t = &l.tickets[i];
        let (x, y) = (
            p.sequence_features(t, t.events.len()),
            back.sequence_features(t, t.events.len()),
        );
        assert_eq!(x.type_ids, y.type_ids);
        assert!(bits32(&x.scalars).eq(bits32(&y.scalars)));
    }
    assert!(Preprocessor::from_json(&json.replace("\"types\"", "\"kinds\"")).is_err());
}

#[test]
fn scalars_are_standardised_with_a_missing_indicator() {
    let l = year_log();
    let split = split_log(&l, &SplitConfig::default()).unwrap();
    let train = every_event().samples(&l, &split.train, split.window_end_ms(SplitPart::Train));
    let p = Preprocessor::fit(&l, &train, FeatureConfig::default()).unwrap();
    let names = p.scaler.channel_names();
    // Sentiment has NaNs in training, priority has none: one indicator.
    assert_eq!(p.n_scalars(), TIME_CHANNELS.len() + 2 + 1);
    assert_eq!(names.last().unwrap(), "sentiment_missing");
    assert_eq!(p.n_scalars() + p.embedding_dim(), 64);
    assert_eq!(p.vocab_size(), p.vocab.types().len() + 1);

    let t = &l.tickets[train[0].ticket];
    let f = sequence_features(t, 4, &p.vocab, &p.scaler);
    assert_eq!(
        (f.len(), f.n_scalars, f.scalars.len()),
        (4, p.n_scalars(), 4 * p.n_scalars())
    );
    let n = p.n_scalars();
    let sentiment = TIME_CHANNELS.len() + 1;
    // Step 3 has a NaN sentiment: scaled value 0, indicator 1; steps 0..3 have indicator 0.
    assert_eq!((f.scalars[3 * n + sentiment], f.scalars[3 * n + n - 1]), (0.0, 1.0));
    assert!((0..3).all(|s| f.scalars[s * n + n - 1] == 0.0));
    // The first step: 0 hours since open and since the previous event, scaled.
    let c = &p.scaler.channels()[1];
    assert_eq!(f.scalars[1], ((0.0 - c.mean) / c.std) as f32);
    // The fitted channels are standardised over the training steps.
    let mut sum = vec![0.0f64; n];
    let mut count = 0.0;
    // Each training ticket's longest prefix covers every step the scaler was fitted on once.
    let longest = train.iter().filter(|s| {
        !train
            .iter()
            .any(|o| o.ticket == s.ticket && o.prefix_len > s.prefix_len)
    });
    for s in longest {
        let f = p.sample_features(&l, s);
        for row in f.scalars.chunks_exact(n) {
            for (a, &x) in sum.iter_mut().zip(row) {
                *a += f64::from(x);
            }
            count += 1.0;
        }
    }
    assert!(
        sum[..TIME_CHANNELS.len()].iter().all(|s| (s / count).abs() < 1e-3),
        "{sum:?}"
    );
}

#[test]
fn preprocessing_config_and_column_errors() {
    let l = year_log();
    let train = every_event().samples(&l, &[0, 1], None);
    let err = Preprocessor::fit(
        &l,
        &train,
        FeatureConfig {
            model_dim: 12,
            ..FeatureConfig::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no room"), "{err}");
    assert!(Preprocessor::fit(&l, &[], FeatureConfig::default()).is_err());
    let p = Preprocessor::fit(&l, &train, FeatureConfig::default()).unwrap();
    p.check_columns(&l.numeric_columns).unwrap();
    assert!(p.check_columns(&["priority".to_string()]).is_err());
}

// ---------------------------------------------------------------- aggregates

#[test]
fn aggregate_features_summarise_the_visible_prefix() {
    let events = vec![
        ev(T0, "opened", 1.0, 0.5),
        ev(T0 + 2 * HOUR_MS, "customer_message", 2.0, f64::NAN),
        ev(T0 + 30 * HOUR_MS, "customer_message", 3.0, -0.5),
        ev(T0 + 30 * HOUR_MS + 30 * MIN_MS, "mystery", 2.0, 0.1),
        ev(T0 + 40 * HOUR_MS, "agent_reply", 9.0, 0.9),
    ];
    let l = log(vec![Ticket {
        id: "a".into(),
        events,
        escalated_at_ms: None,
    }]);
    let train = every_event().ticket_samples(&l, 0, None);
    let mut p = Preprocessor::fit(&l, &train, FeatureConfig::default()).unwrap();
    p.vocab = recur_data::features::Vocabulary::from_counts(
        [
            ("customer_message".to_string(), 2),
            ("opened".to_string(), 1),
            ("agent_reply".to_string(), 1),
        ],
        1,
    );
    let agg = AggregateFeaturizer::from_preprocessor(&p);
    let names = agg.names();
    assert_eq!(names.len(), agg.n_features());
    let f = agg.features(&l.tickets[0], 4);
    let get = |name: &str| f[names.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name}"))];
    assert_eq!(get("events_so_far"), 4.0);
    assert_eq!(get("duration_hours"), 30.5);
    assert_eq!(get("last_gap_hours"), 0.5);
    assert_eq!(get("max_gap_hours"), 28.0);
    assert_eq!(get("events_last_1h"), 2.0);
    assert_eq!(get("events_last_24h"), 2.0);
    assert_eq!(get("open_day_of_week"), 0.0, "2024-01-01 was a Monday");
    assert_eq!(get("cut_hour_utc"), 6.5);
    assert_eq!(get("cut_day_of_week"), 1.0);
    assert_eq!(get("count:customer_message"), 2.0);
    assert_eq!(get("count:<unk>"), 1.0, "`mystery` is not in the vocabulary");
    assert_eq!(get("frac:customer_message"), 0.5);
    assert_eq!(get("last_type:<unk>"), 1.0);
    assert_eq!(get("last_type:customer_message"), 0.0);
    assert_eq!(get("count:agent_reply"), 0.0, "the reply comes after the cut");
    assert_eq!(
        (get("priority:last"), get("priority:max"), get("priority:first")),
        (2.0, 3.0, 1.0)
    );
    assert_eq!((get("sentiment:last"), get("sentiment:min")), (0.1, -0.5));
    assert!((get("sentiment:mean") - (0.5 - 0.5 + 0.1) / 3.0).abs() < 1e-12);
    assert_eq!(get("sentiment:missing_frac"), 0.25);

    let m = agg.matrix(&l, &train);
    assert_eq!((m.n_rows, m.n_cols), (train.len(), agg.n_features()));
    assert_eq!(m.row(3), f.as_slice());
    assert_eq!(m.names, names);
}
