//! `recur serve` in process: random request bodies never panic or give a 5xx.

mod serve_support;

use serve_support::*;

use recur::serve::{self as srv, AppState, LoadedModel, ServeConfig, TicketStore};
use serde_json::{json, Value};

// ---------- property tests, in process ----------

mod props {
    use axum::body::Body;
    use axum::http::Request;
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;

    struct Fixture {
        rt: tokio::runtime::Runtime,
        app: axum::Router,
        _tmp: tempfile::TempDir,
    }

    fn fixture() -> &'static Fixture {
        static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("m");
            make_model(&dir, false, 8, 1);
            let store = TicketStore::open(&tmp.path().join("s.redb")).unwrap();
            let cfg = ServeConfig {
                workers: 1,
                max_events: 64,
                max_body_bytes: 64 * 1024,
                ..ServeConfig::default()
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let state = AppState::new(cfg, LoadedModel::load(&dir).unwrap(), dir.clone(), Some(store));
            Fixture {
                rt,
                app: srv::app(state),
                _tmp: tmp,
            }
        })
    }

    fn status(path: &str, body: Vec<u8>) -> u16 {
        let f = fixture();
        let req = Request::post(path).body(Body::from(body)).unwrap();
        f.rt.block_on(f.app.clone().oneshot(req)).unwrap().status().as_u16()
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                Just("opened".to_string()),
                Just("NaN".to_string()),
                Just("2025-03-01T10:00:00Z".to_string()),
                Just("1740823200.5".to_string()),
                ".{0,12}"
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("ticket_id".to_string()),
                        Just("events".to_string()),
                        Just("timestamp".to_string()),
                        Just("event_type".to_string()),
                        Just("priority".to_string()),
                        Just("sentiment".to_string()),
                        Just("tickets".to_string()),
                        Just("inputs".to_string()),
                        Just("name".to_string()),
                        Just("shape".to_string()),
                        Just("datatype".to_string()),
                        Just("data".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const PATHS: [&str; 5] = [
        "/v1/score",
        "/v1/score/batch",
        "/v2/models/escalation/infer",
        "/v1/tickets/p/events",
        "/admin/reload",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_give_a_5xx(path in 0..PATHS.len(), body in prop::collection::vec(any::<u8>(), 0..300)) {
            let s = status(PATHS[path], body);
            prop_assert!(s < 500, "status {}", s);
        }

        #[test]
        fn random_json_never_gives_a_5xx(path in 0..PATHS.len(), v in json_value()) {
            let s = status(PATHS[path], v.to_string().into_bytes());
            prop_assert!(s < 500, "status {} for {}", s, v);
        }

        #[test]
        fn mutated_valid_requests_never_give_a_5xx(
            field in prop_oneof![Just("timestamp"), Just("event_type"), Just("priority"), Just("sentiment")],
            value in json_value(),
            n in 1usize..5,
        ) {
            let mut events: Vec<Value> = (0..n)
                .map(|i| json!({"timestamp": 1740823200 + 60 * i as i64, "event_type": "customer_message", "priority": 2}))
                .collect();
            events[n - 1][field] = value.clone();
            for (path, body) in [
                ("/v1/score", json!({"ticket_id": "P", "events": events})),
                ("/v1/score/batch", json!({"tickets": [{"ticket_id": "P", "events": events}]})),
                ("/v1/tickets/prop/events", json!({"events": events})),
            ] {
                let s = status(path, body.to_string().into_bytes());
                prop_assert!(s < 500, "status {} on {} for {}", s, path, value);
            }
        }
    }
}
