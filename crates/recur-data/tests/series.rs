//! Time-series readers and the channel scaler: synthetic `.ts` and CSV text for every error
//! (each message must carry its line number), and the real UEA/UCR and Airline files from
//! `../shared/datasets` when that folder is present.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use recur_data::series::{
    read_csv_series, read_csv_series_file, read_ts, read_ts_file, ChannelScaler, Label, Series, SeriesError,
};

fn ts(text: &str) -> Result<recur_data::series::TsDataset, SeriesError> {
    read_ts(Cursor::new(text.as_bytes()), "x.ts")
}

/// The error for `text`; asserts it is a parse error at `line` and that the message starts
/// with `x.ts:{line}:` and contains every one of `needles`.
#[track_caller]
fn ts_error(text: &str, line: u64, needles: &[&str]) -> String {
    let e = ts(text).expect_err("expected an error");
    check_error(&e, "x.ts", line, needles)
}

#[track_caller]
fn check_error(e: &SeriesError, file: &str, line: u64, needles: &[&str]) -> String {
    let msg = e.to_string();
    assert_eq!(e.line(), Some(line), "{msg}");
    assert!(msg.starts_with(&format!("{file}:{line}: ")), "{msg}");
    for n in needles {
        assert!(msg.contains(n), "{msg:?} lacks {n:?}");
    }
    msg
}

const HEADER: &str = "# a comment\n@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n";

#[test]
fn reads_multivariate_variable_length_classes() {
    let d = ts(&format!("{HEADER}1,2,3:4,5,6:down\n\n7,8:9,10:up\r\n")).unwrap();
    assert_eq!(d.problem, "Toy");
    assert_eq!(d.channels, 2);
    assert_eq!(d.class_names, ["up", "down"]);
    assert_eq!(d.len(), 2);
    let s = &d.series[0];
    assert_eq!((s.len, s.channels, &s.label), (3, 2, &Label::Class(1)));
    // Time-major: [t0c0, t0c1, t1c0, ...].
    assert_eq!(s.values, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(s.step(1), [2.0, 5.0]);
    assert_eq!(s.channel(1), [4.0, 5.0, 6.0]);
    assert_eq!(d.series[1].label, Label::Class(0));
    assert_eq!(d.length_range(), (2, 3));
    assert_eq!(d.class_indices(), Some(vec![1, 0]));
}

#[test]
fn channels_of_unequal_length_are_padded_with_nan() {
    let d = ts(&format!("{HEADER}1,2,3:4:up\n")).unwrap();
    let s = &d.series[0];
    assert_eq!(s.len, 3);
    assert_eq!(s.channel(0), [1.0, 2.0, 3.0]);
    let c1 = s.channel(1);
    assert_eq!(c1[0], 4.0);
    assert!(c1[1].is_nan() && c1[2].is_nan());
    assert!(s.has_missing());
    let mut s = s.clone();
    s.fill_missing(0.0);
    assert_eq!(s.channel(1), [4.0, 0.0, 0.0]);
}

#[test]
fn missing_values_regression_targets_and_unlabelled_cases() {
    let d =
        ts("@problemName R\n@missing true\n@univariate true\n@targetLabel true\n@data\n1,?,3:2.5\n4:-1e3\n").unwrap();
    assert_eq!(d.channels, 1);
    assert!(d.class_names.is_empty());
    assert!(d.series[0].values[1].is_nan());
    assert_eq!(d.series[0].label, Label::Target(2.5));
    assert_eq!(d.series[1].label, Label::Target(-1000.0));
    assert_eq!(d.class_indices(), None);

    // No label at all: every ':' field is a channel, channel count from the first case.
    let d = ts("@classLabel false\n@data\n1,2:3,4:5,6\n7:8:9\n").unwrap();
    assert_eq!(d.channels, 3);
    assert_eq!(d.series[1].values, [7.0, 8.0, 9.0]);
    assert_eq!(d.series[1].label, Label::None);

    // Header tags are case-insensitive; a BOM and blank lines are fine.
    let d = ts("\u{feff}@PROBLEMNAME a b\n\n@CLASSLABEL TRUE x\n@DATA\n1:x\n").unwrap();
    assert_eq!(d.problem, "a b");
}

#[test]
fn equal_length_is_enforced() {
    let head = "@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n";
    ts_error(
        &format!("{head}1,2,3:a\n1,2:a\n"),
        7,
        &["length 2", "@seriesLength is 3"],
    );
    let head = "@dimensions 2\n@equalLength true\n@classLabel true a\n@data\n";
    ts_error(
        &format!("{head}1,2:3,4:a\n1,2,3:4,5,6:a\n"),
        6,
        &["length 3", "first case", "2"],
    );
    ts_error(
        &format!("{head}1,2:3:a\n"),
        5,
        &["channel 2: 1 values but channel 1 has 2", "@equalLength"],
    );
}

#[test]
fn every_error_names_its_line() {
    // Header problems.
    ts_error(
        "@timeStamps true\n@data\n(0,1):a\n",
        1,
        &["@timeStamps", "not supported"],
    );
    ts_error(
        "# c\n@problemName P\n@problemName Q\n@data\n",
        3,
        &["@problemName", "twice"],
    );
    ts_error("@bogus 1\n@data\n", 1, &["@bogus", "unknown header tag"]);
    ts_error("@missing maybe\n@data\n", 1, &["@missing", "true", "maybe"]);
    ts_error("@dimensions 0\n@data\n", 1, &["@dimensions", "positive integer"]);
    ts_error("@classLabel true\n@data\n", 1, &["no class names"]);
    ts_error("@classLabel true a b a\n@data\n", 1, &["\"a\"", "twice"]);
    ts_error("@classLabel false a\n@data\n", 1, &["`false` followed by class names"]);
    ts_error(
        "@univariate true\n@dimensions 3\n\n@data\n",
        4,
        &["@univariate true but @dimensions 3"],
    );
    ts_error("@classLabel true a\n@targetLabel true\n@data\n", 3, &["both"]);
    // Structure.
    ts_error("@problemName P\n1,2,3\n@data\n", 2, &["case before @data"]);
    ts_error(
        "@problemName P\n# only a header\n",
        2,
        &["end of file before the @data line"],
    );
    ts_error("@data\n\n", 2, &["no cases after @data"]);
    // Cases.
    ts_error(
        &format!("{HEADER}1,2:3,4:up\n1,2:up\n"),
        11,
        &["expected 2 channel(s) and a label", "found 2"],
    );
    ts_error(
        &format!("{HEADER}1,2:3,4:5,6:up\n"),
        10,
        &["expected 2 channel(s)", "found 4"],
    );
    ts_error(
        &format!("{HEADER}1,2:3,x4:up\n"),
        10,
        &["channel 2, value 2", "cannot parse \"x4\""],
    );
    ts_error(
        &format!("{HEADER}1,,2:3:up\n"),
        10,
        &["channel 1, value 2", "empty value"],
    );
    ts_error(
        &format!("{HEADER}1,inf:3:up\n"),
        10,
        &["channel 1, value 2", "not a finite number"],
    );
    ts_error(
        &format!("{HEADER}1,?:3:up\n"),
        10,
        &["channel 1, value 2", "@missing true"],
    );
    ts_error(
        &format!("{HEADER}1:3:sideways\n"),
        10,
        &["label", "unknown class \"sideways\"", "up down"],
    );
    ts_error("@targetLabel true\n@data\n1,2:abc\n", 3, &["label", "\"abc\""]);
    let e = read_ts(Cursor::new(b"@data\n1,2\xff\n".as_slice()), "x.ts").unwrap_err();
    check_error(&e, "x.ts", 2, &["UTF-8"]);
}

#[test]
fn missing_file_is_an_io_error() {
    let e = read_ts_file("/nonexistent/dir/none.ts").unwrap_err();
    assert!(matches!(e, SeriesError::Io { .. }), "{e}");
    assert!(e.to_string().contains("none.ts"));
}

fn csv(text: &str) -> Result<recur_data::series::CsvSeries, SeriesError> {
    read_csv_series(Cursor::new(text.as_bytes()), "x.csv")
}

#[test]
fn csv_series_reads_index_and_columns() {
    let c = csv("Date,A,B\n2020-01,1,2\n2020-02,,4.5\n").unwrap();
    assert_eq!(c.index_name, "Date");
    assert_eq!(c.index, ["2020-01", "2020-02"]);
    assert_eq!(c.columns, ["A", "B"]);
    assert_eq!(c.values[..2], [1.0, 2.0]);
    assert!(c.values[2].is_nan());
    assert_eq!(c.values[3], 4.5);
    assert_eq!(c.column("B"), Some(vec![2.0, 4.5]));
    assert_eq!(c.column("C"), None);
    let s = c.to_series();
    assert_eq!((s.len, s.channels, s.label), (2, 2, Label::None));
}

#[test]
fn csv_series_errors_name_line_and_column() {
    let e = csv("Date,A\n2020-01,1\n2020-02,x\n").unwrap_err();
    check_error(&e, "x.csv", 3, &["column A", "\"x\""]);
    let e = csv("Date,A\n2020-01,1\n2020-02,1,2\n").unwrap_err();
    check_error(&e, "x.csv", 3, &["expected 2 fields, found 3"]);
    let e = csv("Date,A,A\n").unwrap_err();
    check_error(&e, "x.csv", 1, &["column 3", "duplicate"]);
    let e = csv("Date\n2020\n").unwrap_err();
    check_error(&e, "x.csv", 1, &["numeric column"]);
    let e = csv("Date,A\n").unwrap_err();
    check_error(&e, "x.csv", 1, &["no rows"]);
    let e = csv("").unwrap_err();
    check_error(&e, "x.csv", 1, &["empty file"]);
    let e = csv("Date,A\n1,2\n,3\n").unwrap_err();
    check_error(&e, "x.csv", 3, &["column Date", "empty time label"]);
    let e = csv("Date,A\n1,NaN\n").unwrap_err();
    check_error(&e, "x.csv", 2, &["column A", "finite"]);
}

fn series(values: &[f32], channels: usize) -> Series {
    Series {
        values: values.to_vec(),
        len: values.len() / channels,
        channels,
        label: Label::None,
    }
}

#[test]
fn scaler_fits_on_training_only_and_skips_nan() {
    let a = series(&[1.0, 10.0, 3.0, 10.0, f32::NAN, 10.0], 2);
    let b = series(&[5.0, 10.0], 2);
    let sc = ChannelScaler::fit(&[&a, &b]).unwrap();
    assert_eq!(sc.channels(), 2);
    assert_eq!(sc.mean(), [3.0, 10.0]);
    // Population std of 1, 3, 5; the constant channel gets std 1.
    assert_eq!(sc.std(), [(8.0f64 / 3.0).sqrt() as f32, 1.0]);
    let mut test = series(&[3.0, 12.0, f32::NAN, 10.0], 2);
    sc.transform(&mut test).unwrap();
    assert_eq!(test.values[0], 0.0);
    assert_eq!(test.values[1], 2.0);
    assert!(test.values[2].is_nan());
    assert_eq!(test.values[3], 0.0);
    let mut back = test.values.clone();
    sc.inverse_transform_values(&mut back).unwrap();
    assert_eq!(back[1], 12.0);

    let flat = ChannelScaler::fit_values(&a.values, 2).unwrap();
    assert_eq!(flat.mean(), [2.0, 10.0]);

    assert!(ChannelScaler::fit(&[]).is_err());
    assert!(ChannelScaler::fit(&[&a, &series(&[1.0], 1)]).is_err());
    assert!(ChannelScaler::fit_values(&[1.0, 2.0, 3.0], 2).is_err());
    assert!(sc.transform(&mut series(&[1.0, 2.0, 3.0], 3)).is_err());
    assert!(sc.transform_values(&mut [1.0]).is_err());
}

#[test]
fn scaler_json_round_trip_is_bit_exact() {
    // Awkward f32 values: subnormal, huge, many significant digits, negative zero mean.
    let mean = vec![
        0.1f32,
        -0.0,
        1.0e-40,
        3.402_823e38,
        1.0 / 3.0,
        -123_456.79,
        f32::MIN_POSITIVE,
    ];
    let std = vec![0.3f32, 1.0, 1.0e-38, 1.0e30, 2.0 / 3.0, 7.0e-5, f32::EPSILON];
    let sc = ChannelScaler::new(mean, std).unwrap();
    let json = serde_json::to_string(&sc).unwrap();
    let back: ChannelScaler = serde_json::from_str(&json).unwrap();
    for (a, b) in sc.mean().iter().zip(back.mean()).chain(sc.std().iter().zip(back.std())) {
        assert_eq!(a.to_bits(), b.to_bits(), "{json}");
    }
    // Also for statistics fitted from data (means that are not short decimals).
    let data: Vec<f32> = (0..999)
        .map(|i| ((i as f32) * 0.7311).sin() * 17.0 + 0.001 * i as f32)
        .collect();
    let fitted = ChannelScaler::fit_values(&data, 3).unwrap();
    let back: ChannelScaler = serde_json::from_str(&serde_json::to_string(&fitted).unwrap()).unwrap();
    assert_eq!(back, fitted);
    let (mut x, mut y) = (data.clone(), data);
    fitted.transform_values(&mut x).unwrap();
    back.transform_values(&mut y).unwrap();
    assert!(x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()));

    // And for f32 values in general: 200k scattered bit patterns through serde_json text.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f32::from_bits((state >> 32) as u32)
        })
        .filter(|x| x.is_finite())
        .collect();
    let back: Vec<f32> = serde_json::from_str(&serde_json::to_string(&values).unwrap()).unwrap();
    assert!(values.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));

    // Inconsistent JSON is rejected.
    for bad in [
        r#"{"mean":[0.0],"std":[0.0]}"#,
        r#"{"mean":[0.0,1.0],"std":[1.0]}"#,
        r#"{"mean":[],"std":[]}"#,
        r#"{"mean":[0.0],"std":[1.0],"extra":1}"#,
    ] {
        assert!(serde_json::from_str::<ChannelScaler>(bad).is_err(), "{bad}");
    }
}

/// `../shared/datasets/<rel>` from the workspace root, or `None` (with a note) when absent.
fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("NOTE: {} is absent; skipping the real-file check", p.display());
        None
    }
}

#[test]
fn japanese_vowels() {
    let (Some(train), Some(test)) = (
        shared("JapaneseVowels/JapaneseVowels_TRAIN.ts"),
        shared("JapaneseVowels/JapaneseVowels_TEST.ts"),
    ) else {
        return;
    };
    let train = read_ts_file(train).unwrap();
    let test = read_ts_file(test).unwrap();
    for (d, n) in [(&train, 270), (&test, 370)] {
        assert_eq!(d.problem, "JapaneseVowels");
        assert_eq!(d.len(), n);
        assert_eq!(d.channels, 12);
        assert_eq!(d.class_names, ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        let (lo, hi) = d.length_range();
        assert!(7 <= lo && hi <= 29, "{lo}..{hi}");
        assert!(d
            .series
            .iter()
            .all(|s| !s.has_missing() && s.values.len() == s.len * 12));
        let classes = d.class_indices().unwrap();
        assert!((0..9).all(|k| classes.contains(&k)));
    }
    assert_eq!(train.length_range().0.min(test.length_range().0), 7);
    assert_eq!(train.length_range().1.max(test.length_range().1), 29);
    // The first training case starts 1.860936 (channel 1), -0.207383 (channel 2); speaker 1.
    let s = &train.series[0];
    assert_eq!(s.step(0)[..2], [1.860936, -0.207383]);
    assert_eq!(s.len, 20);
    assert_eq!(s.label, Label::Class(0));
    // 30 utterances per speaker in training.
    let classes = train.class_indices().unwrap();
    assert!((0..9).all(|k| classes.iter().filter(|&&c| c == k).count() == 30));

    let refs: Vec<&Series> = train.series.iter().collect();
    let sc = ChannelScaler::fit(&refs).unwrap();
    let mut all: Vec<f32> = Vec::new();
    for s in &train.series {
        let mut s = s.clone();
        sc.transform(&mut s).unwrap();
        all.extend(s.values);
    }
    let back = ChannelScaler::fit_values(&all, 12).unwrap();
    for (&m, &sd) in back.mean().iter().zip(back.std()) {
        assert!(m.abs() < 1e-5 && (sd - 1.0).abs() < 1e-5, "{m} {sd}");
    }
}

#[test]
fn gun_point() {
    let (Some(train), Some(test)) = (
        shared("GunPoint/GunPoint_TRAIN.ts"),
        shared("GunPoint/GunPoint_TEST.ts"),
    ) else {
        return;
    };
    let train = read_ts_file(train).unwrap();
    let test = read_ts_file(test).unwrap();
    for (d, n) in [(&train, 50), (&test, 150)] {
        assert_eq!(d.problem, "GunPoint");
        assert_eq!((d.len(), d.channels), (n, 1));
        assert_eq!(d.length_range(), (150, 150));
        assert_eq!(d.class_names, ["1", "2"]);
        let classes = d.class_indices().unwrap();
        assert!(classes.contains(&0) && classes.contains(&1));
    }
}

#[test]
fn airline() {
    let Some(path) = shared("Airline/Airline.csv") else {
        return;
    };
    let c = read_csv_series_file(path).unwrap();
    assert_eq!(c.index_name, "Date");
    assert_eq!(c.columns, ["Passengers"]);
    assert_eq!(c.len(), 144);
    assert_eq!((c.index[0].as_str(), c.values[0]), ("1949-01", 112.0));
    assert_eq!((c.index[143].as_str(), c.values[143]), ("1960-12", 432.0));
    let sc = ChannelScaler::fit_values(&c.values[..120], 1).unwrap();
    let mut v = c.values.clone();
    sc.transform_values(&mut v).unwrap();
    sc.inverse_transform_values(&mut v).unwrap();
    assert!(v.iter().zip(&c.values).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs()));
}
