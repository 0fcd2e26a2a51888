//! naga validates every shader without a device, so a WGSL error fails fast and says where.

#[test]
fn every_shader_validates_with_naga() {
    for shader in fer::shaders::ALL {
        let module = naga::front::wgsl::parse_str(shader.source).unwrap_or_else(|error| {
            panic!(
                "shaders/{}.wgsl does not parse:\n{}",
                shader.name,
                error.emit_to_string(shader.source)
            )
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|error| {
            panic!(
                "shaders/{}.wgsl does not validate:\n{}",
                shader.name,
                error.emit_to_string(shader.source)
            )
        });
    }
}

#[test]
fn every_shader_file_is_embedded() {
    let on_disk: std::collections::BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
            .expect("shaders/ exists")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                (path.extension()? == "wgsl")
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect();
    let embedded: std::collections::BTreeSet<String> = fer::shaders::FILES
        .iter()
        .map(|&file| file.to_owned())
        .collect();
    assert_eq!(on_disk, embedded, "shaders/ and src/shaders.rs disagree");
}
