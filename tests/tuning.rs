//! Per-adapter kernel choice: measured once, remembered in memory and on disk, per set of
//! shaders it was measured on.

use fer::gpu::{GpuContext, GpuOptions};
use fer::shaders::{MATMUL, POOL};

#[test]
fn kernel_choices_are_measured_once_and_remembered_on_disk() {
    let file = std::env::temp_dir().join(format!("fer-autotune-test-{}.json", std::process::id()));
    let open = |autotune| {
        let options = GpuOptions {
            autotune,
            autotune_file: Some(file.clone()),
            ..GpuOptions::from_env().expect("FER_BACKEND")
        };
        GpuContext::new(&options).expect("a GPU adapter")
    };
    let measured = std::cell::Cell::new(0);
    let measure = || {
        measured.set(measured.get() + 1);
        Ok(7u32)
    };
    let off = open(false);
    assert_eq!(
        off.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(),
        1,
        "no autotune: the default"
    );
    assert_eq!(measured.get(), 0);

    let on = open(true);
    assert_eq!(on.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 7);
    assert_eq!(on.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 7);
    assert_eq!(measured.get(), 1, "measured once per process");
    let again = open(true);
    assert_eq!(again.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 7);
    assert_eq!(measured.get(), 1, "remembered on disk across contexts");
    // The same key measured on other kernels is another choice: a change to one shader
    // re-times what runs on it and nothing else.
    assert_eq!(again.tuned("probe", &[&POOL], 1u32, measure).unwrap(), 7);
    assert_eq!(measured.get(), 2, "keyed by the shaders it ran on");
    let _ = std::fs::remove_file(&file);

    // The real family: a matmul shape gets a variant that exists.
    let shape = fer::kernels::matmul::MatmulShape::new(9, 10, 11);
    let variant = fer::kernels::matmul::MatmulVariant::tuned(&on, &shape).unwrap();
    assert!(fer::kernels::matmul::MatmulVariant::ALL.contains(&variant));
    let _ = std::fs::remove_file(&file);
}

/// A spent budget leaves a shape to its default without measuring or remembering it, so a
/// later run (or the next model, after `restart_tuning_budget`) still times it.
#[test]
fn a_spent_tuning_budget_leaves_shapes_to_their_default_for_a_later_run() {
    let file = std::env::temp_dir().join(format!("fer-budget-test-{}.json", std::process::id()));
    let open = |budget: f64| {
        let options = GpuOptions {
            autotune: true,
            autotune_file: Some(file.clone()),
            tune_budget: Some(std::time::Duration::from_secs_f64(budget)),
            ..GpuOptions::from_env().expect("FER_BACKEND")
        };
        GpuContext::new(&options).expect("a GPU adapter")
    };
    let measured = std::cell::Cell::new(0);
    let measure = || {
        measured.set(measured.get() + 1);
        Ok(7u32)
    };
    let spent = open(0.0);
    assert_eq!(spent.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 1);
    spent.restart_tuning_budget();
    assert_eq!(spent.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 1);
    assert_eq!(measured.get(), 0, "no time to measure");

    let ample = open(60.0);
    assert_eq!(ample.tuned("probe", &[&MATMUL], 1u32, measure).unwrap(), 7);
    assert_eq!(measured.get(), 1, "measured when there is time");
    // A real family within a budget still gets a variant that exists.
    let shape = fer::kernels::matmul::MatmulShape::new(9, 10, 11);
    let variant = fer::kernels::matmul::MatmulVariant::tuned(&ample, &shape).unwrap();
    assert!(fer::kernels::matmul::MatmulVariant::ALL.contains(&variant));
    let _ = std::fs::remove_file(&file);
}
