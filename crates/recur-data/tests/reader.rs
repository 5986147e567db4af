//! The event-log readers and the writer: both formats, both timestamp forms, both ways of
//! giving escalations, every bad-row error with its file, line and column, skipping bad rows,
//! and exact writer → reader round trips.

use std::io::Cursor;

use proptest::prelude::*;
use recur_data::reader::{
    self, parse_timestamp, read_escalations, read_event_log, read_events, read_log_dir, Format, Problem, ReadError,
    ReadOptions, ReadReport, MAX_BAD_ROW_EXAMPLES, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS,
};
use recur_data::writer::{check_writable, format_timestamp, write_event_log, WriteError};
use recur_data::{Event, EventLog, Ticket};

/// 2025-01-01T00:00:00Z.
const JAN1: i64 = 1_735_689_600_000;
const MIN: i64 = 60_000;

fn opts() -> ReadOptions {
    ReadOptions::default()
}

fn skipping() -> ReadOptions {
    ReadOptions {
        skip_bad_rows: true,
        ..ReadOptions::default()
    }
}

fn csv(text: &str, opts: &ReadOptions) -> Result<(EventLog, ReadReport), ReadError> {
    read_events(Cursor::new(text.as_bytes()), "events.csv", Format::Csv, opts)
}

fn jsonl(text: &str, opts: &ReadOptions) -> Result<(EventLog, ReadReport), ReadError> {
    read_events(Cursor::new(text.as_bytes()), "events.jsonl", Format::Jsonl, opts)
}

#[track_caller]
fn csv_error(text: &str) -> String {
    csv(text, &opts()).expect_err("expected an error").to_string()
}

#[track_caller]
fn jsonl_error(text: &str) -> String {
    jsonl(text, &opts()).expect_err("expected an error").to_string()
}

fn types(t: &Ticket) -> Vec<&str> {
    t.events.iter().map(|e| e.event_type.as_str()).collect()
}

/// Equality that treats NaN as equal to NaN and tells -0.0 from 0.0.
fn same_log(a: &EventLog, b: &EventLog) -> bool {
    let same_num = |x: &f64, y: &f64| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits();
    a.numeric_columns == b.numeric_columns
        && a.tickets.len() == b.tickets.len()
        && a.tickets.iter().zip(&b.tickets).all(|(s, t)| {
            s.id == t.id
                && s.escalated_at_ms == t.escalated_at_ms
                && s.events.len() == t.events.len()
                && s.events.iter().zip(&t.events).all(|(e, f)| {
                    e.timestamp_ms == f.timestamp_ms
                        && e.event_type == f.event_type
                        && e.numeric.len() == f.numeric.len()
                        && e.numeric.iter().zip(&f.numeric).all(|(x, y)| same_num(x, y))
                })
        })
}

const HAPPY_CSV: &str = "\
ticket_id,timestamp,event_type,priority,sentiment
A,2025-01-01T10:00:00Z,opened,2,
B,2025-01-01T09:00:00+01:00,opened,1,
A,2025-01-01T10:05:00.250Z,customer_message,2,-0.5
A,1735725900,agent_reply,2,
B,1735725600.5,escalated,,
A,2025-01-01T10:05:00.250Z,internal_note, 3 ,
";

#[test]
fn csv_happy_path_groups_sorts_and_keeps_numeric_columns_in_file_order() {
    let (log, report) = csv(HAPPY_CSV, &opts()).unwrap();
    assert_eq!(log.numeric_columns, ["priority", "sentiment"]);
    let ids: Vec<&str> = log.tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["A", "B"], "tickets in order of first appearance");
    let a = &log.tickets[0];
    // 1735725900 s = 10:05:00Z; ties (10:05:00.250) keep file order.
    assert_eq!(types(a), ["opened", "agent_reply", "customer_message", "internal_note"]);
    let ts: Vec<i64> = a.events.iter().map(|e| e.timestamp_ms - JAN1).collect();
    assert_eq!(ts, [600 * MIN, 605 * MIN, 605 * MIN + 250, 605 * MIN + 250]);
    assert_eq!(a.events[2].numeric[..], [2.0, -0.5][..]);
    assert!(a.events[0].numeric[1].is_nan(), "an empty cell is NaN");
    assert_eq!(a.events[3].numeric[0], 3.0, "numbers are trimmed");
    assert_eq!(a.escalated_at_ms, None);
    let b = &log.tickets[1];
    assert_eq!(types(b), ["opened"], "the escalation event is not part of the sequence");
    assert_eq!(b.events[0].timestamp_ms, JAN1 + 480 * MIN, "09:00+01:00 is 08:00Z");
    assert_eq!(b.escalated_at_ms, Some(JAN1 + 600 * MIN + 500));
    assert_eq!(
        (
            report.rows,
            report.events,
            report.tickets,
            report.escalated_tickets,
            report.escalation_rows
        ),
        (6, 5, 2, 1, 1)
    );
    assert_eq!(report.bad_rows, 0);
}

#[test]
fn csv_with_only_required_columns_and_a_bom_and_crlf() {
    let text = "\u{feff}event_type,ticket_id,timestamp\r\nopened,T1,0\r\nagent_reply,T1,60\r\n";
    let (log, _) = csv(text, &opts()).unwrap();
    assert!(log.numeric_columns.is_empty());
    assert_eq!(types(&log.tickets[0]), ["opened", "agent_reply"]);
    assert_eq!(log.tickets[0].events[1].timestamp_ms, 60_000);
    assert!(log.tickets[0].events[1].numeric.is_empty());
}

#[test]
fn jsonl_happy_path_takes_the_union_of_extra_keys_in_first_seen_order() {
    let text = r#"{"ticket_id":"A","timestamp":"2025-01-01T10:00:00Z","event_type":"opened","priority":2}

{"sentiment":-0.25,"ticket_id":"A","timestamp":1735725900,"event_type":"customer_message","priority":null}
{"ticket_id":7,"timestamp":1735725600.5,"event_type":"opened","queue":3,"priority":1}
{"ticket_id":"A","timestamp":"1735726200","event_type":"escalated"}
"#;
    let (log, report) = jsonl(text, &opts()).unwrap();
    assert_eq!(log.numeric_columns, ["priority", "sentiment", "queue"]);
    let a = &log.tickets[0];
    assert_eq!(types(a), ["opened", "customer_message"]);
    assert_eq!(
        a.events[0].numeric.len(),
        3,
        "earlier rows are padded to the final width"
    );
    assert_eq!(a.events[0].numeric[0], 2.0);
    assert!(a.events[0].numeric[1].is_nan() && a.events[0].numeric[2].is_nan());
    assert!(a.events[1].numeric[0].is_nan(), "null is missing");
    assert_eq!(a.events[1].numeric[1], -0.25);
    assert_eq!(a.events[1].timestamp_ms, JAN1 + 605 * MIN);
    assert_eq!(a.escalated_at_ms, Some(JAN1 + 610 * MIN));
    let b = &log.tickets[1];
    assert_eq!(b.id, "7", "integer ids become their decimal text");
    assert_eq!(b.events[0].timestamp_ms, JAN1 + 600 * MIN + 500);
    assert_eq!(b.events[0].numeric[0], 1.0);
    assert!(b.events[0].numeric[1].is_nan());
    assert_eq!(b.events[0].numeric[2], 3.0);
    assert_eq!(report.rows, 4, "blank lines are not rows");
}

#[test]
fn timestamps_in_rfc3339_and_epoch_seconds() {
    let ok = [
        ("2025-01-01T00:00:00Z", JAN1),
        ("2025-01-01T00:00:00.123Z", JAN1 + 123),
        ("2025-01-01T00:00:00.1239Z", JAN1 + 123),
        ("2025-01-01t00:00:00z", JAN1),
        ("2025-01-01T01:30:00+01:30", JAN1),
        ("2024-12-31T19:00:00-05:00", JAN1),
        ("  2025-01-01T00:00:00Z ", JAN1),
        ("1735689600", JAN1),
        ("1735689600.5", JAN1 + 500),
        ("1735689600.0009", JAN1),
        ("+1735689600", JAN1),
        ("0", 0),
        ("-1.5", -1500),
        ("-0.0001", -1),
        ("0000-01-01T00:00:00Z", MIN_TIMESTAMP_MS),
        ("9999-12-31T23:59:59.999Z", MAX_TIMESTAMP_MS),
    ];
    for (text, ms) in ok {
        assert_eq!(parse_timestamp(text), Ok(ms), "{text}");
    }
    for bad in [
        "2025-13-01",
        "2025-01-01",
        "2025-01-01T00:00:00",
        "2025-02-30T00:00:00Z",
        "1.7e9",
        "1.",
        ".5",
        "x",
        "1 2",
        "--1",
    ] {
        assert_eq!(parse_timestamp(bad), Err(Problem::Timestamp(bad.into())), "{bad}");
    }
    assert_eq!(
        parse_timestamp("999999999999"),
        Err(Problem::TimestampRange("999999999999".into()))
    );
    assert_eq!(
        parse_timestamp("-62167219201"),
        Err(Problem::TimestampRange("-62167219201".into()))
    );
}

#[test]
fn escalation_event_name_is_configurable_and_the_earliest_counts() {
    let text = "ticket_id,timestamp,event_type\nA,100,opened\nA,300,tier3\nA,200,tier3\nA,400,escalated\n";
    let custom = ReadOptions {
        escalation_event: Some("tier3".into()),
        ..opts()
    };
    let (log, report) = csv(text, &custom).unwrap();
    assert_eq!(types(&log.tickets[0]), ["opened", "escalated"]);
    assert_eq!(log.tickets[0].escalated_at_ms, Some(200_000));
    assert_eq!(report.escalation_rows, 2);
    let none = ReadOptions {
        escalation_event: None,
        ..opts()
    };
    let (log, _) = csv(text, &none).unwrap();
    assert_eq!(log.tickets[0].events.len(), 4);
    assert_eq!(log.tickets[0].escalated_at_ms, None);
}

#[test]
fn escalations_from_a_separate_file_combine_with_escalation_events() {
    let events = "ticket_id,timestamp,event_type\nA,100,opened\nB,100,opened\nC,100,opened\nC,900,escalated\n";
    let (mut log, mut report) = csv(events, &opts()).unwrap();
    let file = "ticket_id,escalated_at,note\nA,2025-01-01T00:00:00Z,x\nB,,y\nC,500,z\nA,1735689000,w\n";
    read_escalations(Cursor::new(file), "escalations.csv", &mut log, &opts(), &mut report).unwrap();
    let at: Vec<Option<i64>> = log.tickets.iter().map(|t| t.escalated_at_ms).collect();
    assert_eq!(at, [Some(1_735_689_000_000), None, Some(500_000)]);
    assert_eq!(report.escalated_tickets, 2);
    assert_eq!(report.escalation_rows, 1 + 3);
}

#[test]
fn escalation_for_an_unknown_ticket_is_an_error_or_a_counted_bad_row() {
    let (mut log, mut report) = csv("ticket_id,timestamp,event_type\nA,1,opened\n", &opts()).unwrap();
    let file = "ticket_id,escalated_at\nA,5\nZ,6\n";
    let err = read_escalations(
        Cursor::new(file),
        "escalations.csv",
        &mut log.clone(),
        &opts(),
        &mut report.clone(),
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        r#"escalations.csv:3: column ticket_id: escalation for unknown ticket "Z""#
    );
    read_escalations(Cursor::new(file), "escalations.csv", &mut log, &skipping(), &mut report).unwrap();
    assert_eq!(log.tickets[0].escalated_at_ms, Some(5000));
    assert_eq!(report.bad_rows, 1);
    let bad = csv_escalation_error("ticket_id,escalated_at\nA,soon\n");
    assert_eq!(
        bad,
        r#"escalations.csv:2: column escalated_at: cannot parse "soon" as RFC 3339 or epoch seconds"#
    );
    let missing = csv_escalation_error("ticket,escalated_at\nA,5\n");
    assert_eq!(missing, "escalations.csv:1: missing required column ticket_id");
}

fn csv_escalation_error(file: &str) -> String {
    let (mut log, mut report) = csv("ticket_id,timestamp,event_type\nA,1,opened\n", &opts()).unwrap();
    read_escalations(Cursor::new(file), "escalations.csv", &mut log, &opts(), &mut report)
        .unwrap_err()
        .to_string()
}

#[test]
fn every_csv_bad_row_names_file_line_and_column() {
    let head = "ticket_id,timestamp,event_type,priority\nA,1,opened,1\n";
    let cases = [
        (
            "A,2025-13-01,agent_reply,1",
            r#"events.csv:3: column timestamp: cannot parse "2025-13-01" as RFC 3339 or epoch seconds"#,
        ),
        ("A,,agent_reply,1", "events.csv:3: column timestamp: missing value"),
        (
            "A,99999999999999,agent_reply,1",
            r#"events.csv:3: column timestamp: timestamp "99999999999999" is outside years 0000-9999"#,
        ),
        (",2,agent_reply,1", "events.csv:3: column ticket_id: missing value"),
        ("A,2,,1", "events.csv:3: column event_type: missing value"),
        (
            "A,2,agent_reply,high",
            r#"events.csv:3: column priority: cannot parse "high" as a number"#,
        ),
        (
            "A,2,agent_reply,inf",
            r#"events.csv:3: column priority: "inf" is not a finite number (leave it empty for a missing value)"#,
        ),
        (
            "A,2,agent_reply,NaN",
            r#"events.csv:3: column priority: "NaN" is not a finite number (leave it empty for a missing value)"#,
        ),
        ("A,2,agent_reply", "events.csv:3: expected 4 fields, found 3"),
        ("A,2,agent_reply,1,9", "events.csv:3: expected 4 fields, found 5"),
    ];
    for (row, want) in cases {
        assert_eq!(csv_error(&format!("{head}{row}\n")), want, "{row}");
    }
    let mut bytes = format!("{head}A,2,").into_bytes();
    bytes.extend_from_slice(b"agent\xff,1\n");
    let err = read_events(Cursor::new(bytes), "events.csv", Format::Csv, &opts()).unwrap_err();
    assert_eq!(err.to_string(), "events.csv:3: column event_type: not valid UTF-8");
}

#[test]
fn line_numbers_count_physical_lines_across_quoted_newlines() {
    let text = "ticket_id,timestamp,event_type\nA,1,\"multi\nline\"\nA,2,opened\nA,x,opened\n";
    assert_eq!(
        csv_error(text),
        r#"events.csv:5: column timestamp: cannot parse "x" as RFC 3339 or epoch seconds"#
    );
}

#[test]
fn header_problems_are_errors_even_when_skipping() {
    let cases = [
        (
            "ticket_id,event_type\nA,opened\n",
            "events.csv:1: missing required column timestamp",
        ),
        (
            "ticket_id,timestamp,event_type,priority,priority\n",
            r#"events.csv:1: duplicate column "priority""#,
        ),
        (
            "ticket_id,timestamp,event_type,,x\n",
            "events.csv:1: column 4 has an empty or non-UTF-8 name",
        ),
        ("", "events.csv: empty file"),
    ];
    for (text, want) in cases {
        assert_eq!(csv(text, &skipping()).unwrap_err().to_string(), want, "{text:?}");
    }
}

#[test]
fn a_ticket_with_only_escalation_rows_is_a_bad_row() {
    let text = "ticket_id,timestamp,event_type\nA,1,opened\nB,2,escalated\n";
    assert_eq!(
        csv_error(text),
        r#"events.csv:3: ticket "B" has no events besides its escalation"#
    );
    let (log, report) = csv(text, &skipping()).unwrap();
    assert_eq!(log.tickets.len(), 1);
    assert_eq!(report.bad_rows, 1);
}

#[test]
fn every_jsonl_bad_row_names_file_line_and_field() {
    let good = r#"{"ticket_id":"A","timestamp":1,"event_type":"opened","priority":1}"#;
    let cases = [
        (
            r#"{"ticket_id":"A","timestamp":"2025-13-01","event_type":"x"}"#,
            r#"events.jsonl:2: field timestamp: cannot parse "2025-13-01" as RFC 3339 or epoch seconds"#,
        ),
        (
            r#"{"ticket_id":"A","event_type":"x"}"#,
            "events.jsonl:2: field timestamp: missing value",
        ),
        (
            r#"{"ticket_id":"","timestamp":1,"event_type":"x"}"#,
            "events.jsonl:2: field ticket_id: missing value",
        ),
        (
            r#"{"ticket_id":1.5,"timestamp":1,"event_type":"x"}"#,
            "events.jsonl:2: field ticket_id: expected a string or an integer, found a number",
        ),
        (
            r#"{"ticket_id":"A","timestamp":true,"event_type":"x"}"#,
            "events.jsonl:2: field timestamp: expected a string or a number, found a boolean",
        ),
        (
            r#"{"ticket_id":"A","timestamp":1,"event_type":3}"#,
            "events.jsonl:2: field event_type: expected a string, found a number",
        ),
        (
            r#"{"ticket_id":"A","timestamp":1,"event_type":"x","priority":"high"}"#,
            "events.jsonl:2: field priority: expected a number or null, found a string",
        ),
        (
            r#"{"ticket_id":"A","timestamp":1,"event_type":"x","priority":1,"priority":2}"#,
            "events.jsonl:2: field priority: duplicate key",
        ),
        (
            r#"[1,2]"#,
            "events.jsonl:2: expected an object, found another JSON value",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(jsonl_error(&format!("{good}\n{line}\n")), want, "{line}");
    }
    let err = jsonl_error(&format!("{good}\n\n{{\"ticket_id\": \n"));
    assert!(
        err.starts_with("events.jsonl:3: invalid JSON: EOF while parsing"),
        "{err}"
    );
}

#[test]
fn jsonl_without_a_required_key_anywhere_is_a_missing_column_even_when_skipping() {
    let text = "{\"ticket_id\":\"A\",\"event_type\":\"opened\"}\n";
    let err = jsonl(text, &skipping()).unwrap_err();
    assert_eq!(err.to_string(), "events.jsonl:1: missing required column timestamp");
}

#[test]
fn skip_bad_rows_counts_them_and_keeps_the_first_reasons() {
    let mut text = String::from("ticket_id,timestamp,event_type,priority\n");
    for i in 0..30 {
        text += &format!("T{},{},opened,1\n", i % 3, i);
        text += &format!("T{},{},agent_reply,oops\n", i % 3, i);
    }
    let (log, report) = csv(&text, &skipping()).unwrap();
    assert_eq!(report.rows, 60);
    assert_eq!(report.bad_rows, 30);
    assert_eq!(report.events, 30);
    assert_eq!(log.tickets.iter().map(|t| t.events.len()).sum::<usize>(), 30);
    assert_eq!(report.bad_row_examples.len(), MAX_BAD_ROW_EXAMPLES);
    assert_eq!(report.bad_row_examples[0].line, 3);
    assert_eq!(report.bad_row_examples[1].line, 5);
    assert_eq!(
        report.bad_row_examples[0].to_string(),
        r#"events.csv:3: column priority: cannot parse "oops" as a number"#
    );
    let summary = report.to_string();
    assert!(
        summary.contains("30 bad rows skipped (first: events.csv:3: column priority"),
        "{summary}"
    );
}

#[test]
fn files_are_read_by_extension_and_missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"ticket_id\":\"A\",\"timestamp\":1,\"event_type\":\"opened\"}\n",
    )
    .unwrap();
    let escalations = dir.path().join("escalations.csv");
    std::fs::write(&escalations, "ticket_id,escalated_at\nA,2\n").unwrap();
    let (log, _) = read_event_log(&events, Some(&escalations), &opts()).unwrap();
    assert_eq!(log.tickets[0].escalated_at_ms, Some(2000));
    let (from_dir, _) = read_log_dir(dir.path(), &opts()).unwrap();
    assert_eq!(from_dir, log);

    let txt = dir.path().join("events.txt");
    std::fs::write(&txt, "").unwrap();
    let err = read_event_log(&txt, None, &opts()).unwrap_err();
    assert!(matches!(err, ReadError::UnknownFormat { .. }), "{err}");
    let gone = dir.path().join("gone.csv");
    let err = read_event_log(&gone, None, &opts()).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: ", gone.display())), "{err}");
    let err = read_log_dir(&dir.path().join("nothing"), &opts()).unwrap_err();
    assert!(matches!(err, ReadError::NoEventFile { .. }), "{err}");
}

fn event(ms: i64, kind: &str, numeric: Vec<f64>) -> Event {
    Event {
        timestamp_ms: ms,
        event_type: kind.into(),
        numeric,
    }
}

fn awkward_log() -> EventLog {
    EventLog {
        numeric_columns: vec!["priority".into(), "sentiment".into(), "x y".into()],
        tickets: vec![
            Ticket {
                id: "A,\"quoted\"\nline".into(),
                events: vec![
                    event(MIN_TIMESTAMP_MS, "opened", vec![1.0, f64::NAN, -0.0]),
                    event(
                        JAN1 + 1,
                        "say \"hi\", then\r\nleave",
                        vec![4.0, -0.123456789012345, 1e-300],
                    ),
                    event(JAN1 + 1, " spaced ", vec![f64::MAX, f64::MIN_POSITIVE, 5e-324]),
                ],
                escalated_at_ms: Some(MAX_TIMESTAMP_MS),
            },
            Ticket {
                id: " ".into(),
                events: vec![event(-1, "opened", vec![f64::NAN; 3])],
                escalated_at_ms: None,
            },
        ],
    }
}

#[test]
fn writer_then_reader_is_exact_for_awkward_values() {
    let dir = tempfile::tempdir().unwrap();
    let log = awkward_log();
    let files = write_event_log(dir.path(), &log).unwrap();
    assert_eq!(files.events, dir.path().join("events.csv"));
    let (back, report) = read_log_dir(dir.path(), &opts()).unwrap();
    assert!(same_log(&log, &back), "{log:#?}\n!=\n{back:#?}");
    assert_eq!(report.bad_rows, 0);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    let text = std::fs::read_to_string(&files.escalations).unwrap();
    assert_eq!(
        text,
        "ticket_id,escalated_at\n\"A,\"\"quoted\"\"\nline\",9999-12-31T23:59:59.999Z\n"
    );
}

#[test]
fn writer_formats_timestamps_in_utc_with_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog {
        numeric_columns: vec!["priority".into()],
        tickets: vec![Ticket {
            id: "HS-1".into(),
            events: vec![event(JAN1 + 1234, "opened", vec![2.0])],
            escalated_at_ms: None,
        }],
    };
    let files = write_event_log(dir.path(), &log).unwrap();
    let text = std::fs::read_to_string(files.events).unwrap();
    assert_eq!(
        text,
        "ticket_id,timestamp,event_type,priority\nHS-1,2025-01-01T00:00:01.234Z,opened,2\n"
    );
    assert_eq!(format_timestamp(JAN1), "2025-01-01T00:00:00.000Z");
}

#[test]
fn writer_refuses_logs_it_cannot_represent() {
    let base = awkward_log();
    let mut inf = base.clone();
    inf.tickets[0].events[0].numeric[0] = f64::INFINITY;
    let mut short = base.clone();
    short.tickets[1].events[0].numeric.pop();
    let mut empty = base.clone();
    empty.tickets[1].events.clear();
    let mut dup = base.clone();
    dup.tickets[1].id = dup.tickets[0].id.clone();
    let mut col = base.clone();
    col.numeric_columns[2] = "timestamp".into();
    let mut unsorted = base.clone();
    unsorted.tickets[0].events.swap(0, 1);
    for (log, needle) in [
        (inf, "column priority is inf"),
        (short, "2 numeric values for 3 numeric columns"),
        (empty, "has no events"),
        (dup, "appears twice"),
        (col, "required column"),
        (unsorted, "not in time order"),
    ] {
        let err = check_writable(&log).unwrap_err();
        assert!(matches!(err, WriteError::Ticket { .. } | WriteError::Column { .. }));
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        let dir = tempfile::tempdir().unwrap();
        assert!(write_event_log(dir.path(), &log).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written for an invalid log"
        );
    }
}

fn arb_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => -1.0e6..1.0e6f64,
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        1 => (1i32..5).prop_map(f64::from),
    ]
}

fn arb_log() -> impl Strategy<Value = EventLog> {
    let columns = prop::collection::hash_set("[a-z][a-z_ ]{0,5}[a-z]", 0..4).prop_map(|s| {
        s.into_iter()
            .filter(|c| !reader::REQUIRED_COLUMNS.contains(&c.as_str()))
            .collect::<Vec<_>>()
    });
    columns.prop_flat_map(|columns| {
        let width = columns.len();
        let event = (
            MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS,
            prop_oneof!["[a-z_]{1,12}", "[ -~\n\u{e9}]{1,6}"]
                .prop_filter("not the escalation name", |t| t != "escalated"),
            prop::collection::vec(arb_number(), width),
        )
            .prop_map(|(ms, kind, numeric)| event(ms, &kind, numeric));
        let ticket = (
            prop::collection::vec(event, 1..6),
            prop::option::of(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS),
        );
        let tickets = prop::collection::btree_map("[ -~\n]{1,8}", ticket, 0..6);
        tickets.prop_map(move |tickets| EventLog {
            numeric_columns: columns.clone(),
            tickets: tickets
                .into_iter()
                .map(|(id, (mut events, escalated_at_ms))| {
                    events.sort_by_key(|e| e.timestamp_ms);
                    Ticket {
                        id,
                        events,
                        escalated_at_ms,
                    }
                })
                .collect(),
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writer_reader_round_trip_is_exact(log in arb_log()) {
        let dir = tempfile::tempdir().unwrap();
        write_event_log(dir.path(), &log).unwrap();
        let (back, report) = read_log_dir(dir.path(), &opts()).unwrap();
        prop_assert!(same_log(&log, &back), "{:#?}\n!=\n{:#?}", log, back);
        prop_assert_eq!(report.bad_rows, 0);
    }

    #[test]
    fn written_timestamps_parse_back(ms in MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS) {
        prop_assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
    }
}

#[test]
fn a_skipped_jsonl_row_adds_no_numeric_column() {
    let text = r#"{"ticket_id":"A","timestamp":1,"event_type":"opened","priority":1}
{"ticket_id":"A","timestamp":"later","event_type":"x","queue":3}
{"ticket_id":"A","timestamp":2,"event_type":"agent_reply","sentiment":0.5}
"#;
    let (log, report) = jsonl(text, &skipping()).unwrap();
    assert_eq!(log.numeric_columns, ["priority", "sentiment"]);
    assert_eq!(report.bad_rows, 1);
    assert_eq!(
        report.bad_row_examples[0].to_string(),
        r#"events.jsonl:2: field timestamp: cannot parse "later" as RFC 3339 or epoch seconds"#
    );
    assert_eq!(log.tickets[0].events[1].numeric[1], 0.5);
}
