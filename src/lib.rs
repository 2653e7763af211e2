//! mmrt
