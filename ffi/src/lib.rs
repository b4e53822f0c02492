//! C ABI of lwflow (see issue: C ABI).
