// Copies a range of channels between two tensors of the same batch and spatial size (NCHW, or
// [N, C] with spatial size 1): for every item n, channels src_offset.. of src go to channels
// dst_offset.. of dst, which is otherwise left as it is. Concatenation along channels copies
// each input into its range of the output; its backward copies each input's range of the
// output gradient out. The twin is src/reference/concat.rs.
//
// Per item the copied channels are one contiguous run of channels·spatial values on both
// sides, so invocation i copies value i of the run for every item: neighbouring lanes touch
// neighbouring memory, and no index needs a division.

struct Params {
    batch: u32,
    // Values per item in the copied range: channels · spatial.
    run: u32,
    // Values per item of each tensor, and where the range starts within an item.
    src_item: u32,
    src_start: u32,
    dst_item: u32,
    dst_start: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn copy_channels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= p.run {
        return;
    }
    for (var n = 0u; n < p.batch; n++) {
        dst[n * p.dst_item + p.dst_start + i] = src[n * p.src_item + p.src_start + i];
    }
}
