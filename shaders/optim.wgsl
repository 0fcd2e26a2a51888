// Optimizer updates over one flat parameter tensor, quads per invocation (quads.wgsl,
// prepended), in the order
// and with the f32 scalars of PyTorch's single-tensor formulas (torch/optim/sgd.py
// _single_tensor_sgd, torch/optim/adam.py _single_tensor_adam; maximize and amsgrad off).
//
// Binding 0 holds what is fixed for the life of the dispatch; binding 1 ("hyper") holds what
// changes per step (lr, step, bias corrections). The host rewrites hyper with
// queue.write_buffer before each submit, so the bind groups are built once. The two entry
// points reuse binding numbers with their own variables: WGSL forbids reuse only within one
// entry point.

override MOMENTUM: bool = false;
override NESTEROV: bool = false;
override DECOUPLED: bool = false;

// ---------------------------------------------------------------------------------------------
// SGD

struct SgdParams {
    n: u32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
}

struct SgdHyper {
    lr: f32,
    // 1 on the first step: PyTorch creates the momentum buffer as a copy of the gradient.
    first_step: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> sgd_params: SgdParams;
@group(0) @binding(1) var<storage, read> sgd_hyper: SgdHyper;
@group(0) @binding(2) var<storage, read_write> sgd_param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> sgd_grad: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> momentum_buffer: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn sgd_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = sgd_params.n;
    for (var w = quads_of(wid, nwg, lid); has_quad(w, n); next_of(&w)) {
        let q = w.q;
        let p = sgd_param[q];
        var d = sgd_grad[q];
        if sgd_params.weight_decay != 0.0 {
            d += sgd_params.weight_decay * p;
        }
        if MOMENTUM {
            let old = momentum_buffer[q];
            var buf: vec4<f32>;
            if sgd_hyper.first_step == 1u {
                buf = d;
            } else {
                buf = old * sgd_params.momentum + sgd_params.one_minus_dampening * d;
            }
            momentum_buffer[q] = below_n(q, n, buf, old);
            if NESTEROV {
                d += sgd_params.momentum * buf;
            } else {
                d = buf;
            }
        }
        sgd_param[q] = below_n(q, n, p - sgd_hyper.lr * d, p);
    }
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW

struct AdamParams {
    n: u32,
    // 1 − β1, the lerp weight, rounded once from f64 as PyTorch rounds its Python float.
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    // Times the parameter, added to the gradient: an L2 penalty's 2λ, plus Adam's weight decay
    // (AdamW's decay arrives per step in hyper instead).
    coupled_decay: f32,
    _pad0: u32,
    _pad1: u32,
}

struct AdamHyper {
    // lr / (1 − β1^t)
    step_size: f32,
    // √(1 − β2^t)
    bias_correction2_sqrt: f32,
    // AdamW: 1 − lr·wd (1 for Adam)
    decay: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> adam_params: AdamParams;
@group(0) @binding(1) var<storage, read> adam_hyper: AdamHyper;
@group(0) @binding(2) var<storage, read_write> adam_param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> adam_grad: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;

// torch.lerp(start, end, weight) for a scalar weight, both of ATen's branches (exact at weight 1).
fn lerp(start: vec4<f32>, end: vec4<f32>, weight: f32) -> vec4<f32> {
    let diff = end - start;
    if weight < 0.5 {
        return start + weight * diff;
    }
    return end - diff * (1.0 - weight);
}

@compute @workgroup_size(QUAD_WG)
fn adam_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = adam_params.n;
    for (var w = quads_of(wid, nwg, lid); has_quad(w, n); next_of(&w)) {
        let q = w.q;
        let old_p = adam_param[q];
        let old_m = exp_avg[q];
        let old_v = exp_avg_sq[q];
        var p = old_p;
        var g = adam_grad[q];
        if adam_params.coupled_decay != 0.0 {
            g += adam_params.coupled_decay * old_p;
        }
        if DECOUPLED {
            p *= adam_hyper.decay;
        }
        let m = lerp(old_m, g, adam_params.one_minus_beta1);
        let v = old_v * adam_params.beta2 + adam_params.one_minus_beta2 * g * g;
        exp_avg[q] = below_n(q, n, m, old_m);
        exp_avg_sq[q] = below_n(q, n, v, old_v);
        let denom = sqrt(v) / adam_hyper.bias_correction2_sqrt + adam_params.eps;
        adam_param[q] = below_n(q, n, p - adam_hyper.step_size * (m / denom), old_p);
    }
}
