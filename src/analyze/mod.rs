//! Turns measured data into answers: scaling efficiency and growth fits,
//! breaking points and recovery.

pub mod scaling;
pub mod stress;
