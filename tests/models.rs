//! The study's models: layer names, shapes and parameter counts as PyTorch has them.

use fer::gpu::{GpuContext, GpuOptions};
use fer::nn::models::{build, Architecture, ModelKind};

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

#[test]
fn cnn_has_the_studys_parameter_count_and_state_dict_names() {
    let ctx = gpu();
    let model = build(&ctx, ModelKind::Cnn, &Architecture::default(), 0)
        .expect("builds")
        .expect("a GPU model");
    assert_eq!(model.params.trainable_count(), 4_344_711);
    let names: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
    for index in [0, 1, 5, 6, 10, 11, 15, 16, 21, 22, 25, 26, 29] {
        let prefix = format!("network.{index}.");
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no {prefix}* in {names:?}"
        );
    }
    assert!(names.contains(&"network.22.running_var"));
    assert_eq!(model.shapes(64).expect("shapes").last(), Some(&vec![64, 7]));
}

#[test]
fn mlp_and_softmax_use_the_studys_names() {
    let ctx = gpu();
    let arch = Architecture::default();
    let mlp = build(&ctx, ModelKind::Mlp, &arch, 0)
        .expect("builds")
        .expect("GPU model");
    let names: Vec<&str> = mlp.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "fc2.weight",
            "fc2.bias",
            "bn2.weight",
            "bn2.bias",
            "bn2.running_mean",
            "bn2.running_var",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    let softmax = build(&ctx, ModelKind::Softmax, &arch, 0)
        .expect("builds")
        .expect("GPU model");
    assert_eq!(softmax.params.trainable_count(), 2304 * 7 + 7);
    assert!(build(&ctx, ModelKind::Baseline, &arch, 0)
        .expect("builds")
        .is_none());
}

#[test]
fn a_batch_too_large_for_the_adapter_is_refused_with_the_layer_named() {
    let ctx = gpu();
    let softmax = build(&ctx, ModelKind::Softmax, &Architecture::default(), 0)
        .expect("builds")
        .expect("a GPU model");
    // 2^26 images of 2304 floats: 576 GiB, beyond any adapter's binding limit.
    let error = softmax.plan(&ctx, 1 << 26).err().expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("`input`") && text.contains("smaller batch size"),
        "{text}"
    );
}
