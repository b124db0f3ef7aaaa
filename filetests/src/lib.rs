//! The filetest runner lives in `tests/filetests.rs`.
