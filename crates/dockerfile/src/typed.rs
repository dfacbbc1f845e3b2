//! Typed instructions (to come).
