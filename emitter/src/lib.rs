//! Emitter crate (skeleton; filled by the emitter issue).
