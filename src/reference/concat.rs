//! Concatenation along channels (`torch.cat(xs, dim=1)` of NCHW or [N, C] tensors) as copies
//! of channel ranges: the forward copies each input into its range of the output, the
//! backward copies each input's range of the output gradient out.

/// Channels `src_offset..src_offset + channels` of a [batch, src_channels, spatial] tensor
/// copied to channels `dst_offset..` of a [batch, dst_channels, spatial] one, for every item of
/// the batch; the destination's other channels are left as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelCopy {
    pub batch: usize,
    /// Values per channel: height·width, or 1 for [N, C].
    pub spatial: usize,
    /// Channels copied.
    pub channels: usize,
    pub src_channels: usize,
    pub src_offset: usize,
    pub dst_channels: usize,
    pub dst_offset: usize,
}

impl ChannelCopy {
    /// The copies that concatenate inputs of `channels[i]` channels each, input i into
    /// channels `channels[..i].sum()..` of the output, in order.
    pub fn concat(batch: usize, spatial: usize, channels: &[usize]) -> Vec<ChannelCopy> {
        let total = channels.iter().sum();
        let mut offset = 0;
        channels
            .iter()
            .map(|&channels| {
                let copy = ChannelCopy {
                    batch,
                    spatial,
                    channels,
                    src_channels: channels,
                    src_offset: 0,
                    dst_channels: total,
                    dst_offset: offset,
                };
                offset += channels;
                copy
            })
            .collect()
    }

    /// The same channels copied back: a concat copy's backward, which takes its input's range
    /// of the output gradient.
    pub fn reversed(&self) -> ChannelCopy {
        ChannelCopy {
            src_channels: self.dst_channels,
            src_offset: self.dst_offset,
            dst_channels: self.src_channels,
            dst_offset: self.src_offset,
            ..*self
        }
    }

    /// Whether both ranges lie inside their tensors.
    pub fn check(&self) -> Result<(), String> {
        for (what, channels, offset) in [
            ("source", self.src_channels, self.src_offset),
            ("destination", self.dst_channels, self.dst_offset),
        ] {
            if offset + self.channels > channels {
                return Err(format!(
                    "channels {offset}..{} are not in the {what}'s {channels}",
                    offset + self.channels
                ));
            }
        }
        Ok(())
    }

    pub fn src_len(&self) -> usize {
        self.batch * self.src_channels * self.spatial
    }

    pub fn dst_len(&self) -> usize {
        self.batch * self.dst_channels * self.spatial
    }
}

/// Does `copy` from `src` into `dst`.
pub fn copy_channels(copy: &ChannelCopy, src: &[f32], dst: &mut [f32]) {
    for n in 0..copy.batch {
        for c in 0..copy.channels {
            for s in 0..copy.spatial {
                let from = ((n * copy.src_channels + copy.src_offset + c) * copy.spatial) + s;
                let to = ((n * copy.dst_channels + copy.dst_offset + c) * copy.spatial) + s;
                dst[to] = src[from];
            }
        }
    }
}

/// `torch.cat(inputs, dim=1)`, input i holding `channels[i]` channels.
pub fn concat(batch: usize, spatial: usize, channels: &[usize], inputs: &[&[f32]]) -> Vec<f32> {
    let copies = ChannelCopy::concat(batch, spatial, channels);
    let mut output = vec![0.0; batch * spatial * channels.iter().sum::<usize>()];
    for (copy, input) in copies.iter().zip(inputs) {
        copy_channels(copy, input, &mut output);
    }
    output
}

/// The backward of [`concat`]: each input's range of the output gradient `dy`.
pub fn concat_backward(
    batch: usize,
    spatial: usize,
    channels: &[usize],
    dy: &[f32],
) -> Vec<Vec<f32>> {
    ChannelCopy::concat(batch, spatial, channels)
        .iter()
        .map(|copy| {
            let back = copy.reversed();
            let mut dx = vec![0.0; back.dst_len()];
            copy_channels(&back, dy, &mut dx);
            dx
        })
        .collect()
}
