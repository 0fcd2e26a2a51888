//! A whole model run on the CPU, layer by layer through the layers' CPU twins and the loss's
//! twin: the reference a GPU step is held against, on the same weights.

use crate::reference::softmax_ce::{self, CrossEntropy};

use super::error::GraphError;
use super::join::cpu_sum;
use super::layer::{CpuForward, CpuSaved};
use super::model::{Model, Node, Op, Value};
use super::plan::layer_seed;

/// The outcome of one CPU training step (forward, loss, backward; no optimizer).
pub struct CpuStep {
    /// [batch, classes].
    pub logits: Vec<f32>,
    /// The batch's mean cross-entropy.
    pub loss: f64,
    /// dL/d(tensor) in [`ParameterStore`](super::ParameterStore) order, empty for
    /// non-trainable tensors, zero for those of nodes the output does not depend on.
    pub param_grads: Vec<Vec<f32>>,
}

/// What the forward keeps for the backward: every value and every node's saved state.
struct Tape {
    shapes: Vec<Vec<usize>>,
    activations: Vec<Vec<f32>>,
    saved: Vec<CpuSaved>,
}

impl Tape {
    fn len(&self, value: Value) -> usize {
        self.activations[value.index()].len()
    }
}

/// A value's gradient from what its readers sent back (last reader first), summed in reader
/// order as the GPU plan sums them; zeros where nobody reads it.
fn gradient(sent: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    sent.reverse();
    match sent.len() {
        0 => vec![0.0; len],
        1 => sent.pop().expect("one gradient"),
        _ => {
            let parts: Vec<&[f32]> = sent.iter().map(Vec::as_slice).collect();
            cpu_sum(&parts)
        }
    }
}

impl Model {
    /// The CPU twin of [`Plan::record_forward`](super::Plan::record_forward) on `input`
    /// ([batch, sample_shape...]) with `params` (every tensor, in store order): the logits.
    /// In training, batch norms move their running statistics in `params`, and dropout draws
    /// its masks from [`layer_seed`]`(seed, layer index)`, the seeds
    /// [`Plan::prepare_step`](super::Plan::prepare_step) gives the GPU.
    pub fn cpu_forward(
        &self,
        params: &mut [Vec<f32>],
        input: &[f32],
        training: bool,
        seed: u64,
    ) -> Result<Vec<f32>, GraphError> {
        let mut tape = self.cpu_tape(params, input, training, seed)?;
        Ok(tape
            .activations
            .pop()
            .expect("the tape ends with the logits"))
    }

    /// One CPU training step: forward in training mode, mean cross-entropy against `labels`,
    /// and the backward of both, as a GPU step records them before the optimizer.
    pub fn cpu_step(
        &self,
        params: &mut [Vec<f32>],
        input: &[f32],
        labels: &[u32],
        ce: &CrossEntropy,
        seed: u64,
    ) -> Result<CpuStep, GraphError> {
        let tape = self.cpu_tape(params, input, true, seed)?;
        let logits = tape.activations[self.output().index()].clone();
        let loss = softmax_ce::loss(ce, &logits, labels, None);
        let mut grad = vec![0.0; logits.len()];
        softmax_ce::backward(ce, &logits, labels, None, 1.0, &mut grad);
        // The gradient of a tensor the output does not depend on is zero (the GPU leaves it
        // as it starts); the rest are filled in below.
        let mut param_grads: Vec<Vec<f32>> = (0..params.len())
            .map(|p| {
                let spec = &self.params.get(p).spec;
                if spec.trainable {
                    vec![0.0; spec.len()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        // Per value, the gradients its readers sent back, last reader first.
        let mut sent: Vec<Vec<Vec<f32>>> = vec![Vec::new(); tape.activations.len()];
        sent[self.output().index()].push(grad);
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if !self.live[i] {
                continue;
            }
            let output = Value::of_node(i);
            let grad_output = gradient(&mut sent[output.index()], tape.len(output));
            let inputs: Vec<usize> = node.inputs.iter().map(|v| v.index()).collect();
            let grad_inputs = match &node.op {
                Op::Layer(layer) => {
                    let backward = with_node_params(params, node, |node_params| {
                        layer.cpu_backward(
                            &tape.shapes[inputs[0]],
                            &tape.activations[inputs[0]],
                            &tape.saved[i],
                            &grad_output,
                            node_params,
                        )
                    });
                    for (&p, param_grad) in node.params.iter().zip(backward.param_grads) {
                        param_grads[p] = param_grad;
                    }
                    vec![backward.grad_input]
                }
                Op::Join(join) => {
                    let shapes: Vec<&[usize]> =
                        inputs.iter().map(|&v| &tape.shapes[v][..]).collect();
                    join.cpu_backward(&shapes, &grad_output)
                }
            };
            for (input, grad_input) in inputs.into_iter().zip(grad_inputs) {
                sent[input].push(grad_input);
            }
        }
        Ok(CpuStep {
            logits,
            loss,
            param_grads,
        })
    }

    /// The forward, keeping every value; the last is the logits.
    fn cpu_tape(
        &self,
        params: &mut [Vec<f32>],
        input: &[f32],
        training: bool,
        seed: u64,
    ) -> Result<Tape, GraphError> {
        let sample_len: usize = self.sample_shape.iter().product();
        assert_eq!(
            input.len() % sample_len,
            0,
            "the input is not a whole number of {:?} samples",
            self.sample_shape
        );
        let shapes = self.shapes(input.len() / sample_len)?;
        let mut activations = vec![input.to_vec()];
        let mut saved = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.live[i] {
                // Never run: an empty value nobody reads.
                activations.push(Vec::new());
                saved.push(CpuSaved::Nothing);
                continue;
            }
            let forward = match &node.op {
                Op::Layer(layer) => {
                    let input = node.inputs[0].index();
                    with_node_params(params, node, |node_params| {
                        layer.cpu_forward(
                            &shapes[input],
                            &activations[input],
                            node_params,
                            training,
                            layer_seed(seed, i),
                        )
                    })
                }
                Op::Join(join) => {
                    let index = |v: &Value| v.index();
                    let inputs: Vec<&[f32]> = node
                        .inputs
                        .iter()
                        .map(|v| activations[index(v)].as_slice())
                        .collect();
                    let shapes: Vec<&[usize]> =
                        node.inputs.iter().map(|v| &shapes[index(v)][..]).collect();
                    CpuForward::stateless(join.cpu_forward(&shapes, &inputs))
                }
            };
            activations.push(forward.output);
            saved.push(forward.saved);
        }
        Ok(Tape {
            shapes,
            activations,
            saved,
        })
    }
}

/// Lends `node` its tensors out of the model-wide `params` (moved, not copied) and puts them
/// back afterwards.
fn with_node_params<T>(
    params: &mut [Vec<f32>],
    node: &Node,
    f: impl FnOnce(&mut [Vec<f32>]) -> T,
) -> T {
    let mut lent: Vec<Vec<f32>> = node
        .params
        .iter()
        .map(|&p| std::mem::take(&mut params[p]))
        .collect();
    let result = f(&mut lent);
    for (&p, tensor) in node.params.iter().zip(lent) {
        params[p] = tensor;
    }
    result
}
