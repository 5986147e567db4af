//! The escalation model of shared/docs/anchors.md: 2-layer bidirectional GRU, input 64,
//! hidden 128 per direction, final forward and backward states of the top layer into a linear
//! head. PyTorch 2.15 on this machine class: 1.68 ms (18 events), 10.2 ms (112 events) at
//! batch 1 on one thread; trains at ~4,600 events/s on 2 threads.
//!
//! Run: `cargo bench -p recur-nn --bench escalation`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::init::normal;
use recur_nn::{BackwardOptions, CellKind, Precision, Rnn, RnnConfig, SeqBatch, State};

fn model() -> Rnn<f32> {
    let mut cfg = RnnConfig::new(CellKind::Gru, 64, 128);
    cfg.num_layers = 2;
    cfg.bidirectional = true;
    Rnn::new(cfg, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()
}

/// Logit of the escalation head on the top layer's final states.
fn head(h_n: &[f32], w: &[f32]) -> f32 {
    let top = &h_n[2 * 128..];
    top.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// `infer_bigru2_h128_t{T}_b1` on 1 thread with f32 weights, plus the `_2t` (two threads),
/// `_f16` and `_int8` (reduced-precision weights) variants. For A/B ratios on a shared machine
/// prefer the interleaved `variants` bench.
fn infer(c: &mut Criterion) {
    let base = model();
    let variant = |threads: usize, prec: Precision| {
        let mut m = base.clone();
        m.set_threads(threads).unwrap();
        m.set_precision(prec);
        m
    };
    let models = [
        ("", variant(1, Precision::F32)),
        ("_2t", variant(2, Precision::F32)),
        ("_f16", variant(1, Precision::F16)),
        ("_int8", variant(1, Precision::Int8)),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w: Vec<f32> = (0..256).map(|_| normal(&mut rng) as f32 * 0.05).collect();
    for t in [18usize, 112] {
        let x: Vec<f32> = (0..t * 64).map(|_| normal(&mut rng) as f32).collect();
        for (suffix, m) in &models {
            c.bench_function(&format!("infer_bigru2_h128_t{t}_b1{suffix}"), |bch| {
                bch.iter(|| {
                    let out = m
                        .forward(&SeqBatch::batch_first(&x, 1, t, 64), &State::default())
                        .unwrap();
                    head(&out.h_n, &w)
                })
            });
        }
    }
}

/// Thread lengths log-normal with median 18 and p95 112 (the guide's distribution).
pub fn ticket_lengths(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let sigma = (112.0f64 / 18.0).ln() / 1.6449;
    (0..n)
        .map(|_| ((18.0f64).ln() + sigma * normal(rng)).exp().round().clamp(1.0, 400.0) as usize)
        .collect()
}

fn train(c: &mut Criterion) {
    let m = model();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let b = 64;
    let lengths = ticket_lengths(b, &mut rng);
    let t = *lengths.iter().max().unwrap();
    let events: usize = lengths.iter().sum();
    let x: Vec<f32> = (0..b * t * 64).map(|_| normal(&mut rng) as f32).collect();
    let w: Vec<f32> = (0..256).map(|_| normal(&mut rng) as f32 * 0.05).collect();
    let labels: Vec<f32> = (0..b).map(|i| (i % 31 == 0) as u8 as f32).collect();
    let mut g = c.benchmark_group("train");
    g.throughput(Throughput::Elements(events as u64));
    g.sample_size(10);
    eprintln!("train_bigru2_b64_packed: {events} events in a batch of {b}, longest {t}");
    g.bench_function("train_bigru2_b64_packed", |bch| {
        bch.iter(|| {
            let xb = SeqBatch::batch_first(&x, b, t, 64).with_lengths(&lengths);
            let (out, tape) = m.forward_train(&xb, &State::default(), None).unwrap();
            // BCE-with-logits gradient of the head, pos_weight 30, mean over the batch.
            let mut d_hn = vec![0.0f32; out.h_n.len()];
            for i in 0..b {
                let mut z = 0.0;
                for d in 0..2 {
                    let row = &out.h_n[((2 + d) * b + i) * 128..][..128];
                    z += row.iter().zip(&w[d * 128..]).map(|(a, b)| a * b).sum::<f32>();
                }
                let p = 1.0 / (1.0 + (-z).exp());
                let y = labels[i];
                let dz = ((1.0 + 29.0 * y) * p - 30.0 * y) / b as f32;
                for d in 0..2 {
                    let row = &mut d_hn[((2 + d) * b + i) * 128..][..128];
                    row.iter_mut().zip(&w[d * 128..]).for_each(|(g, &wv)| *g = dz * wv);
                }
            }
            let d_out = vec![0.0f32; out.output.len()];
            m.backward(&tape, &d_out, Some(&d_hn), None, BackwardOptions::default())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, infer, train);
criterion_main!(benches);
