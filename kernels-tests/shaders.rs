//! naga validates every shader without a device, so a WGSL error fails fast and says where.

use fer::gpu::Shader;

fn parse(shader: &Shader) -> naga::Module {
    naga::front::wgsl::parse_str(shader.source).unwrap_or_else(|error| {
        panic!(
            "shaders/{}.wgsl does not parse:\n{}",
            shader.name,
            error.emit_to_string(shader.source)
        )
    })
}

#[test]
fn every_shader_validates_with_naga() {
    for shader in fer::shaders::ALL {
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&parse(shader))
        .unwrap_or_else(|error| {
            panic!(
                "shaders/{}.wgsl does not validate:\n{}",
                shader.name,
                error.emit_to_string(shader.source)
            )
        });
    }
}

/// Each struct the host uploads has the WGSL twin's size and member offsets (naga's layout),
/// and the same members: a field swapped, added or retyped on one side would otherwise be read
/// as its neighbour's bytes, with no error anywhere. Every struct a shader binds (uniform or
/// storage) must have a twin in `kernels::uniform_layouts`, so a new kernel cannot skip this.
#[test]
fn every_uploaded_struct_matches_its_wgsl_layout() {
    let layouts = fer::kernels::uniform_layouts();
    for shader in fer::shaders::ALL {
        let module = parse(shader);
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .unwrap_or_else(|error| panic!("shaders/{}.wgsl: {error}", shader.name));
        let ours: Vec<_> = layouts
            .iter()
            .filter(|layout| layout.shader.name == shader.name)
            .collect();
        for (_, global) in module.global_variables.iter() {
            let ty = &module.types[global.ty];
            let bound = matches!(
                global.space,
                naga::AddressSpace::Uniform | naga::AddressSpace::Storage { .. }
            );
            if bound && matches!(ty.inner, naga::TypeInner::Struct { .. }) {
                let name = ty.name.as_deref().unwrap_or_default();
                assert!(
                    ours.iter().any(|layout| layout.name == name),
                    "shaders/{}.wgsl binds struct {name} with no Rust twin in kernels::uniform_layouts",
                    shader.name
                );
            }
        }
        for layout in ours {
            let context = format!("shaders/{}.wgsl struct {}", shader.name, layout.name);
            let (handle, ty) = module
                .types
                .iter()
                .find(|(_, ty)| ty.name.as_deref() == Some(layout.name))
                .unwrap_or_else(|| panic!("{context} is not declared"));
            let naga::TypeInner::Struct { members, .. } = &ty.inner else {
                panic!("{context} is not a struct");
            };
            assert_eq!(
                layouter[handle].size as usize, layout.size,
                "{context}: WGSL size against Rust size"
            );
            for &(field, offset) in &layout.fields {
                let member = members
                    .iter()
                    .find(|member| member.name.as_deref() == Some(field))
                    .unwrap_or_else(|| panic!("{context} has no member {field}, Rust has"));
                assert_eq!(
                    member.offset as usize, offset,
                    "{context} member {field}: WGSL offset against Rust offset"
                );
            }
            for member in members {
                let name = member.name.as_deref().unwrap_or_default();
                assert!(
                    name.starts_with('_') || layout.fields.iter().any(|&(field, _)| field == name),
                    "{context} member {name} has no Rust twin field"
                );
            }
        }
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
