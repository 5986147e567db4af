//! The escape for characters outside the vocabulary: the Witten–Bell probability, the UTF-8
//! spelling distribution, a predictive distribution that sums to one, and old vocabularies.

mod charlm_support;

use charlm_support::small;
use recur_nn::CellKind;
use recur_train::models::charlm::{add_spelling, CharVocab, UNK};

#[test]
fn novel_is_the_witten_bell_estimate_of_the_training_text() {
    // 3 distinct characters in 7: 3 / (7 + 3).
    let v = CharVocab::from_text("abcabca", 1);
    assert!((v.novel() - 0.3).abs() < 1e-15);
    // Characters dropped by `min_count` still count as seen types.
    let v = CharVocab::from_text("aaab", 2);
    assert_eq!(v.chars(), &['a']);
    assert!((v.novel() - 2.0 / 6.0).abs() < 1e-15);
    assert_eq!(CharVocab::from_text("", 1).novel(), 0.0);
    // `from_chars` has no escape until one is set.
    assert_eq!(CharVocab::from_chars("ab".chars()).unwrap().novel(), 0.0);
}

#[test]
fn spelling_is_a_distribution_over_the_characters_outside_the_vocabulary() {
    let v = CharVocab::from_text("Call me Ishmael. ‘Tis — 鯨!", 1);
    let mut total = 0.0f64;
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let n = v.unknown_nats(c);
        if v.id(c) == UNK {
            assert!(n > 0.0, "{c:?}");
            total += (-n).exp();
        } else {
            assert_eq!(n, 0.0, "{c:?} is known: no spelling");
        }
    }
    assert!((total - 1.0).abs() < 1e-9, "sums to {total}");
    // Shorter UTF-8 encodings are likelier: an unseen ASCII character against an unseen
    // two-, three- and four-byte one, 8 bits (ln 256) apart per byte.
    let (a, e, k, f) = (
        v.unknown_nats('/'),
        v.unknown_nats('é'),
        v.unknown_nats('字'),
        v.unknown_nats('🐋'),
    );
    let byte = 256f64.ln();
    for (x, y) in [(a, e), (e, k), (k, f)] {
        assert!((y - x - byte).abs() < 1e-9);
    }
    assert_eq!(v.spelling_nats("a/é"), vec![0.0, a, e]);
}

#[test]
fn the_predictive_distribution_sums_to_one_and_unknowns_cost_at_most_the_escape() {
    let text = "the whale, the sea, the ship; and ahab.";
    let vocab = CharVocab::from_text(text, 1);
    let m = small(CellKind::Lstm, &vocab, 5);
    let ctx = vocab.encode("the wha");
    let eps = vocab.novel();
    assert!(eps > 0.0);
    let mut total = 0.0f64;
    let mut p_unk = 0.0;
    for id in 0..vocab.len() {
        let mut ids = ctx.clone();
        ids.push(id);
        let l = *m.losses_ids(&ids, 1, 64).unwrap().last().unwrap();
        total += (-l).exp();
        if id == UNK {
            p_unk = (-l).exp();
        }
    }
    assert!((total - 1.0).abs() < 1e-9, "sums to {total}");
    // The untrained softmax gives UNK about 1/V; the escape adds `eps` on top of (1 − eps)·that.
    assert!(p_unk > eps);
    // An unseen character costs −ln P(UNK) plus its spelling, at most −ln eps plus it.
    let with_slash = m.losses("the wha/", 1, 64).unwrap();
    let slash = *with_slash.last().unwrap();
    assert!((slash - (-p_unk.ln() + vocab.unknown_nats('/'))).abs() < 1e-9);
    assert!(slash <= -eps.ln() + vocab.unknown_nats('/'));
    let ev = m.evaluate("the wha/", 1, 64).unwrap();
    assert!((ev.nats - with_slash.iter().sum::<f64>() / 7.0).abs() < 1e-12);
    // `add_spelling` is what `losses` does to `losses_ids`.
    let mut by_ids = m.losses_ids(&vocab.encode("the wha/"), 1, 64).unwrap();
    add_spelling(&mut by_ids, &vocab.spelling_nats("the wha/"));
    assert_eq!(by_ids, with_slash);
}

#[test]
fn no_escape_is_the_plain_softmax_and_old_vocabularies_load_without_one() {
    let text = "abcab cabba";
    let with = CharVocab::from_text(text, 1);
    let old: CharVocab = serde_json::from_str(r#"{"chars": " abc"}"#).unwrap();
    assert_eq!(old.chars(), with.chars());
    assert_eq!(old.novel(), 0.0);
    let m_old = small(CellKind::Gru, &old, 3);
    let m_new = small(CellKind::Gru, &with, 3);
    let ids = with.encode(text);
    let (lo, ln) = (
        m_old.losses_ids(&ids, 1, 64).unwrap(),
        m_new.losses_ids(&ids, 1, 64).unwrap(),
    );
    // Known characters: the escape scales every softmax probability by 1 − novel.
    for (a, b) in lo.iter().zip(&ln) {
        assert!((b - a + (-with.novel()).ln_1p()).abs() < 1e-12);
    }
    // Without an escape the known characters' softmax probabilities plus UNK's sum to one.
    let total: f64 = (0..old.len())
        .map(|id| {
            let mut x = ids[..4].to_vec();
            x.push(id);
            (-m_old.losses_ids(&x, 1, 64).unwrap()[3]).exp()
        })
        .sum();
    assert!((total - 1.0).abs() < 1e-9);
    // The escape round-trips through JSON and is validated.
    let json = serde_json::to_string(&with).unwrap();
    assert!(json.contains("\"novel\""), "{json}");
    assert_eq!(serde_json::from_str::<CharVocab>(&json).unwrap(), with);
    for bad in [r#"{"chars": "ab", "novel": 1.0}"#, r#"{"chars": "ab", "novel": -0.1}"#] {
        let e = serde_json::from_str::<CharVocab>(bad).unwrap_err().to_string();
        assert!(e.contains("vocab.novel"), "{e}");
    }
    let mut m = m_old.clone();
    m.set_novel(with.novel()).unwrap();
    assert_eq!(m.losses_ids(&ids, 1, 64).unwrap(), ln);
    assert!(m.set_novel(1.5).is_err());
}
