//! Service level objectives, the way Sloth writes them, for Ensign's kill
//! switch: pure functions, no I/O, no clock, no async runtime.
//!
//! - [`spec`]: parse and validate Sloth `prometheus/v1` specs (YAML or JSON),
//!   reporting every problem with its JSON Pointer;
//! - [`window`]: the alerting windows (5m … 3d, period 30d) and the window
//!   scale that compresses them for demos and tests;
//! - [`rules`]: Prometheus rule groups with Sloth's names — SLI recording
//!   rules, metadata recordings and the multiwindow multi-burn-rate page and
//!   ticket alerts;
//! - [`status`]: an SLO's status (ok, warning, critical, exhausted, no-data)
//!   from its error ratio per window, with the same thresholds as the alerts.
//!
//! See `docs/adr/0011-slo-specs-windows-and-status.md`.

pub mod rules;
pub mod spec;
pub mod status;
pub mod window;

pub use rules::{RuleFile, generate};
pub use spec::{Slo, Spec, SpecError};
pub use status::{Assessment, ErrorRatios, Status, assess};
pub use window::WindowScale;
