//! What the commands do beyond parsing: load data, run the library, print for people and
//! write for scripts.

pub mod bench;
pub mod dry_run;
pub mod export;
pub mod live;
pub mod models;
pub mod options;
pub mod predict;
pub mod profile;
pub mod recipes;
pub mod report;
pub mod train;
