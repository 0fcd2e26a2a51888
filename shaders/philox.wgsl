// Prepended to the shaders that draw dropout masks (src/shaders.rs). The mask is
// Philox2x32-10 (Salmon et al., SC'11; Random123's philox2x32) of the counter (i, seed_hi)
// under the key seed_lo: element i is kept iff its top 24 bits, read as a uniform in [0, 1),
// are ≥ p, i.e. iff (bits >> 8) ≥ threshold = ceil(p·2^24). The twin is
// reference::elementwise::Dropout.

// The high 32 bits of the 64-bit products a·b, from 16-bit halves (WGSL has no 64-bit
// integers).
fn mul_hi(a: u32, b: vec4<u32>) -> vec4<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & vec4<u32>(0xffffu);
    let b_hi = b >> vec4<u32>(16u);
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let carry = ((lo_lo >> vec4<u32>(16u)) + (hi_lo & vec4<u32>(0xffffu))
        + (lo_hi & vec4<u32>(0xffffu))) >> vec4<u32>(16u);
    return a_hi * b_hi + (hi_lo >> vec4<u32>(16u)) + (lo_hi >> vec4<u32>(16u)) + carry;
}

// The first output word of philox2x32 for four counters (lo[j], hi) under one key.
fn philox2x32_first(lo: vec4<u32>, hi: u32, key: u32) -> vec4<u32> {
    var x0 = lo;
    var x1 = vec4<u32>(hi);
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let product_hi = mul_hi(0xD256D193u, x0);
        let product_lo = 0xD256D193u * x0;
        x0 = product_hi ^ vec4<u32>(k) ^ x1;
        x1 = product_lo;
        k += 0x9E3779B9u;
    }
    return x0;
}

// Whether elements i survive the dropout drawn from (seed_lo, seed_hi) with this threshold.
fn dropout_keeps(i: vec4<u32>, seed_lo: u32, seed_hi: u32, threshold: u32) -> vec4<bool> {
    let bits = philox2x32_first(i, seed_hi, seed_lo);
    return (bits >> vec4<u32>(8u)) >= vec4<u32>(threshold);
}
