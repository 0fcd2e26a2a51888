//! The profiled steps as a Chrome / Perfetto trace: one track for the queue, one slice per
//! dispatch, laid end to end in the order the GPU ran them.

use std::io;
use std::path::Path;

use serde_json::{json, Value};

use super::Profile;
use crate::fsutil::write_atomically;

const PID: u32 = 1;
/// The one queue fer submits to.
const QUEUE_TID: u32 = 1;

/// `{"traceEvents": [...]}` with timestamps and durations in microseconds of GPU time.
pub fn chrome_trace(profile: &Profile) -> Value {
    let mut events = vec![
        json!({
            "name": "process_name", "ph": "M", "pid": PID,
            "args": { "name": format!("fer profile {} (batch {})", profile.model.name(), profile.batch) },
        }),
        json!({
            "name": "thread_name", "ph": "M", "pid": PID, "tid": QUEUE_TID,
            "args": { "name": "queue" },
        }),
    ];
    let mut now_us = 0.0;
    for (step, dispatches) in profile.timeline.iter().enumerate() {
        for dispatch in dispatches {
            let dur_us = dispatch.seconds * 1e6;
            let mut args = json!({ "step": step });
            if let Some(cost) = dispatch.cost {
                args["flops"] = json!(cost.flops);
                args["bytes"] = json!(cost.bytes);
            }
            events.push(json!({
                "name": dispatch.label, "cat": "kernel", "ph": "X",
                "ts": now_us, "dur": dur_us, "pid": PID, "tid": QUEUE_TID, "args": args,
            }));
            now_us += dur_us;
        }
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

/// Writes [`chrome_trace`] to `path`, atomically.
pub fn write_trace(path: &Path, profile: &Profile) -> io::Result<()> {
    let bytes = serde_json::to_vec(&chrome_trace(profile))?;
    write_atomically(path, &bytes)
}
