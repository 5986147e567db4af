//! Dense building blocks around the recurrent stack, each with an explicit backward pass.
//!
//! Parameters live in a [`ParamBuffer`] with PyTorch's names (`weight`, `bias`), so a model's
//! head is checkpointed as `head.weight`, `head.bias` like an `nn.Linear` in a `state_dict`.

use rand::Rng;
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, MatMut, MatRef};
use recur_nn::ParamBuffer;

/// `y = x·Wᵀ + b` with `W: [out, in]`, `b: [out]` (PyTorch `nn.Linear`).
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features.
    pub in_dim: usize,
    /// Output features.
    pub out_dim: usize,
    /// `weight [out, in]`, `bias [out]` (when `bias` is on).
    pub params: ParamBuffer<f32>,
    bias: bool,
    k: Kernels,
}

impl Linear {
    /// A zero linear layer.
    pub fn zeros(in_dim: usize, out_dim: usize, bias: bool) -> Self {
        let mut layout = vec![("weight".to_string(), vec![out_dim, in_dim])];
        if bias {
            layout.push(("bias".to_string(), vec![out_dim]));
        }
        Linear {
            in_dim,
            out_dim,
            params: ParamBuffer::zeros(&layout),
            bias,
            k: kernels(KernelChoice::Best),
        }
    }

    /// PyTorch's default initialization: weight and bias uniform in `±1/√in`.
    pub fn new(in_dim: usize, out_dim: usize, bias: bool, rng: &mut impl Rng) -> Self {
        let mut l = Self::zeros(in_dim, out_dim, bias);
        let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
        for v in l.params.as_mut_slice() {
            *v = rng.random_range(-bound..bound) as f32;
        }
        l
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        self.bias
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &[f32] {
        self.params.get("weight").expect("linear has a weight")
    }

    /// `y [n, out] = x [n, in] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut y = vec![0.0; n * self.out_dim];
        self.forward_into(x, n, &mut y);
        y
    }

    /// [`Linear::forward`] into a caller's buffer of `n · out` elements.
    pub fn forward_into(&self, x: &[f32], n: usize, y: &mut [f32]) {
        assert_eq!(x.len(), n * self.in_dim, "linear input");
        assert_eq!(y.len(), n * self.out_dim, "linear output");
        if let Some(b) = self.params.get("bias") {
            for row in y.chunks_exact_mut(self.out_dim) {
                row.copy_from_slice(b);
            }
        } else {
            y.fill(0.0);
        }
        if n == 0 {
            return;
        }
        self.k.gemm(
            MatRef::new(x, n, self.in_dim),
            MatRef::new(self.weight(), self.out_dim, self.in_dim).t(),
            MatMut::new(y, n, self.out_dim),
            Accum::Add,
        );
    }

    /// Backward of [`Linear::forward`]: adds `∂L/∂W`, `∂L/∂b` into `grad` (same layout as
    /// `params`) and returns `∂L/∂x` when `want_dx`.
    pub fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        n: usize,
        grad: &mut ParamBuffer<f32>,
        want_dx: bool,
    ) -> Option<Vec<f32>> {
        assert_eq!(x.len(), n * self.in_dim, "linear input");
        assert_eq!(dy.len(), n * self.out_dim, "linear output gradient");
        if n > 0 {
            let gw = grad.get_mut("weight").expect("linear grad has a weight");
            self.k.gemm(
                MatRef::new(dy, n, self.out_dim).t(),
                MatRef::new(x, n, self.in_dim),
                MatMut::new(gw, self.out_dim, self.in_dim),
                Accum::Add,
            );
            if let Some(gb) = grad.get_mut("bias") {
                for row in dy.chunks_exact(self.out_dim) {
                    for (g, d) in gb.iter_mut().zip(row) {
                        *g += *d;
                    }
                }
            }
        }
        if !want_dx {
            return None;
        }
        let mut dx = vec![0.0; n * self.in_dim];
        if n > 0 {
            self.k.gemm(
                MatRef::new(dy, n, self.out_dim),
                MatRef::new(self.weight(), self.out_dim, self.in_dim),
                MatMut::new(&mut dx, n, self.in_dim),
                Accum::Replace,
            );
        }
        Some(dx)
    }
}

/// A lookup table `weight [vocab, dim]` (PyTorch `nn.Embedding`).
#[derive(Clone, Debug)]
pub struct Embedding {
    /// Number of rows (ids `0..vocab`).
    pub vocab: usize,
    /// Row width.
    pub dim: usize,
    /// `weight [vocab, dim]`.
    pub params: ParamBuffer<f32>,
}

impl Embedding {
    /// A zero table.
    pub fn zeros(vocab: usize, dim: usize) -> Self {
        Embedding {
            vocab,
            dim,
            params: ParamBuffer::zeros(&[("weight".to_string(), vec![vocab, dim])]),
        }
    }

    /// PyTorch's default initialization: standard normal entries.
    pub fn new(vocab: usize, dim: usize, rng: &mut impl Rng) -> Self {
        let mut e = Self::zeros(vocab, dim);
        for v in e.params.as_mut_slice() {
            *v = recur_nn::init::normal(rng) as f32;
        }
        e
    }

    /// The row of `id`.
    pub fn row(&self, id: usize) -> &[f32] {
        &self.params.as_slice()[id * self.dim..(id + 1) * self.dim]
    }

    /// Gathers rows: `out [ids.len(), dim]`.
    ///
    /// # Panics
    /// When an id is `≥ vocab` (callers validate ids at their boundary).
    pub fn forward(&self, ids: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        for &id in ids {
            assert!(id < self.vocab, "embedding id {id} ≥ vocabulary {}", self.vocab);
            out.extend_from_slice(self.row(id));
        }
        out
    }

    /// Scatter-adds `dy [ids.len(), dim]` into `grad`.
    pub fn backward(&self, ids: &[usize], dy: &[f32], grad: &mut ParamBuffer<f32>) {
        assert_eq!(dy.len(), ids.len() * self.dim, "embedding output gradient");
        let g = grad.as_mut_slice();
        for (&id, d) in ids.iter().zip(dy.chunks_exact(self.dim)) {
            for (a, b) in g[id * self.dim..(id + 1) * self.dim].iter_mut().zip(d) {
                *a += *b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn linear_backward_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let lin = Linear::new(5, 3, true, &mut rng);
        let n = 4;
        let x: Vec<f32> = (0..n * 5).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let w: Vec<f32> = (0..n * 3).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0).collect();
        // L = Σ w ⊙ y
        let loss = |l: &Linear, x: &[f32]| -> f64 {
            l.forward(x, n)
                .iter()
                .zip(&w)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let mut grad = lin.params.zeros_like();
        let dx = lin.backward(&x, &w, n, &mut grad, true).unwrap();
        let eps = 1e-2f32;
        for i in 0..lin.params.as_slice().len() {
            let mut p = lin.clone();
            p.params.as_mut_slice()[i] += eps;
            let up = loss(&p, &x);
            p.params.as_mut_slice()[i] -= 2.0 * eps;
            let down = loss(&p, &x);
            let fd = (up - down) / (2.0 * eps as f64);
            assert!(
                (fd - grad.as_slice()[i] as f64).abs() < 1e-3,
                "param {i}: {fd} vs {}",
                grad.as_slice()[i]
            );
        }
        for i in 0..x.len() {
            let mut xp = x.clone();
            xp[i] += eps;
            let up = loss(&lin, &xp);
            xp[i] -= 2.0 * eps;
            let down = loss(&lin, &xp);
            let fd = (up - down) / (2.0 * eps as f64);
            assert!((fd - dx[i] as f64).abs() < 1e-3, "x {i}: {fd} vs {}", dx[i]);
        }
    }

    #[test]
    fn embedding_scatter_adds_repeated_ids() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let e = Embedding::new(4, 2, &mut rng);
        let ids = [1, 3, 1];
        assert_eq!(&e.forward(&ids)[0..2], e.row(1));
        let mut g = e.params.zeros_like();
        e.backward(&ids, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut g);
        assert_eq!(g.as_slice(), &[0.0, 0.0, 6.0, 8.0, 0.0, 0.0, 3.0, 4.0]);
    }
}
