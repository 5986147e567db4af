//! The decoder's GRU cell, run one step at a time (PyTorch `nn.GRUCell`: names `weight_ih
//! [3H, I]`, `weight_hh [3H, H]`, `bias_ih [3H]`, `bias_hh [3H]`, gate order `r | z | n`,
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`). The gate
//! epilogues are recur's fused kernels.

use rand::Rng;
use recur_kernels::gates::{GRU_CACHE, GRU_GATES};
use recur_kernels::{kernels, Accum, KernelChoice, Kernels, MatMut, MatRef};
use recur_nn::ParamBuffer;

/// A GRU cell with its parameters in one buffer.
#[derive(Clone, Debug)]
pub struct GruCell {
    /// Input width `I`.
    pub input: usize,
    /// Hidden width `H`.
    pub hidden: usize,
    /// `weight_ih, weight_hh, bias_ih, bias_hh`.
    pub params: ParamBuffer<f32>,
    k: Kernels,
}

/// What one step keeps for its backward pass.
#[derive(Clone, Debug, Default)]
pub struct GruStep {
    /// Post-activation gates and `W_hn h + b_hn`, `[n, 4H]`.
    pub cache: Vec<f32>,
}

impl GruCell {
    /// PyTorch's default initialization, `U(−1/√H, 1/√H)` for every parameter.
    pub fn new(input: usize, hidden: usize, rng: &mut impl Rng) -> Self {
        let g = GRU_GATES * hidden;
        let layout = [
            ("weight_ih".to_string(), vec![g, input]),
            ("weight_hh".to_string(), vec![g, hidden]),
            ("bias_ih".to_string(), vec![g]),
            ("bias_hh".to_string(), vec![g]),
        ];
        let mut params = ParamBuffer::zeros(&layout);
        let bound = 1.0 / (hidden as f64).sqrt();
        for v in params.as_mut_slice() {
            *v = rng.random_range(-bound..bound) as f32;
        }
        GruCell {
            input,
            hidden,
            params,
            k: kernels(KernelChoice::Best),
        }
    }

    fn p(&self, name: &str) -> &[f32] {
        self.params.get(name).expect("GRU cell tensor")
    }

    /// One step over `n` rows: `x [n, I]`, `h_prev [n, H]` → `h [n, H]` and the step's cache.
    pub fn forward(&self, n: usize, x: &[f32], h_prev: &[f32]) -> (Vec<f32>, GruStep) {
        let (h, g) = (self.hidden, GRU_GATES * self.hidden);
        let mut gi = Vec::with_capacity(n * g);
        let mut gh = Vec::with_capacity(n * g);
        for _ in 0..n {
            gi.extend_from_slice(self.p("bias_ih"));
            gh.extend_from_slice(self.p("bias_hh"));
        }
        let w_ih = MatRef::new(self.p("weight_ih"), g, self.input).t();
        let w_hh = MatRef::new(self.p("weight_hh"), g, h).t();
        self.k.gemm(
            MatRef::new(x, n, self.input),
            w_ih,
            MatMut::new(&mut gi, n, g),
            Accum::Add,
        );
        self.k
            .gemm(MatRef::new(h_prev, n, h), w_hh, MatMut::new(&mut gh, n, g), Accum::Add);
        let mut out = vec![0.0; n * h];
        let mut cache = vec![0.0; n * GRU_CACHE * h];
        self.k.gru_fwd(n, h, &gi, &gh, h_prev, &mut out, &mut cache);
        (out, GruStep { cache })
    }

    /// Backward of one step: from `dh = ∂L/∂h [n, H]` adds the parameter gradients into
    /// `grad` and returns `(∂L/∂x [n, I], ∂L/∂h_prev [n, H])`.
    pub fn backward(
        &self,
        n: usize,
        x: &[f32],
        h_prev: &[f32],
        step: &GruStep,
        dh: &[f32],
        grad: &mut ParamBuffer<f32>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (h, g) = (self.hidden, GRU_GATES * self.hidden);
        let mut dgi = vec![0.0; n * g];
        let mut dgh = vec![0.0; n * g];
        let mut dh_prev = vec![0.0; n * h];
        self.k
            .gru_bwd(n, h, &step.cache, h_prev, dh, &mut dgi, &mut dgh, &mut dh_prev);
        let w_ih = MatRef::new(self.p("weight_ih"), g, self.input);
        let w_hh = MatRef::new(self.p("weight_hh"), g, h);
        let mut dx = vec![0.0; n * self.input];
        self.k.gemm(
            MatRef::new(&dgi, n, g),
            w_ih,
            MatMut::new(&mut dx, n, self.input),
            Accum::Replace,
        );
        self.k.gemm(
            MatRef::new(&dgh, n, g),
            w_hh,
            MatMut::new(&mut dh_prev, n, h),
            Accum::Add,
        );
        let dgi_t = MatRef::new(&dgi, n, g).t();
        let dgh_t = MatRef::new(&dgh, n, g).t();
        self.k.gemm(
            dgi_t,
            MatRef::new(x, n, self.input),
            MatMut::new(grad.get_mut("weight_ih").expect("grad"), g, self.input),
            Accum::Add,
        );
        self.k.gemm(
            dgh_t,
            MatRef::new(h_prev, n, h),
            MatMut::new(grad.get_mut("weight_hh").expect("grad"), g, h),
            Accum::Add,
        );
        for (name, d) in [("bias_ih", &dgi), ("bias_hh", &dgh)] {
            let gb = grad.get_mut(name).expect("grad");
            for row in d.chunks_exact(g) {
                gb.iter_mut().zip(row).for_each(|(a, b)| *a += *b);
            }
        }
        (dx, dh_prev)
    }
}
