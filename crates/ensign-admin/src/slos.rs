//! What the SLO routes need besides the database: the SLOs of the spec files
//! given to `ensign serve --slo` (read once at start, read-only through the
//! API, shadowing a stored SLO of the same name), where Prometheus is, and
//! the window scale its rules were generated with.

use ensign_slo::{Spec, WindowScale};

use crate::prometheus::PrometheusClient;

/// One SLO of a spec file: its name, its single-SLO spec and the file.
#[derive(Debug, Clone)]
pub struct FileSlo {
    name: String,
    spec: Spec,
    path: String,
}

impl FileSlo {
    /// The SLO of `spec`, a spec holding one SLO (see [`Spec::single`]), read
    /// from `path`.
    pub fn new(spec: Spec, path: String) -> Self {
        let name = spec
            .slos
            .first()
            .map(|slo| spec.id(slo))
            .unwrap_or_default();
        FileSlo { name, spec, path }
    }

    /// `<service>-<slo>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was read from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Its spec (one SLO).
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

/// The SLO configuration of a server.
#[derive(Debug, Clone, Default)]
pub struct SloSettings {
    /// SLOs from files, read-only.
    pub files: Vec<FileSlo>,
    /// The Prometheus the status is read from (`--prometheus-url`), if any.
    pub prometheus: Option<PrometheusClient>,
    /// The window scale the SLO rules in that Prometheus were generated with
    /// (reported with every status).
    pub window_scale: WindowScale,
}

impl SloSettings {
    /// The file SLO named `name`.
    pub(crate) fn file(&self, name: &str) -> Option<&FileSlo> {
        self.files.iter().find(|slo| slo.name == name)
    }
}
