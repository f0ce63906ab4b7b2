//! Shadow runs: what to shadow. A candidate version gets a copy of live
//! requests and its answers are compared with the live ones, never reaching
//! callers; the gateway runs it and keeps the counters.

use serde::{Deserialize, Serialize};

fn default_sample() -> u32 {
    100
}

/// What to shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// The candidate version.
    pub candidate: u32,
    /// Percent of live requests copied to the candidate.
    #[serde(default = "default_sample")]
    pub sample_percent: u32,
    /// JSON fields (by name, at any depth) left out of the comparison.
    #[serde(default)]
    pub ignore_fields: Vec<String>,
}

impl ShadowSpec {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.sample_percent) {
            return Err(format!(
                "`sample_percent` {} is out of range; allowed 1..=100",
                self.sample_percent
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_percent_defaults_to_all_and_is_checked() {
        let spec: ShadowSpec = serde_json::from_str(r#"{"candidate":2}"#).unwrap();
        assert_eq!(spec.sample_percent, 100);
        spec.validate().unwrap();
        for bad in [0, 101] {
            let spec = ShadowSpec {
                sample_percent: bad,
                ..spec.clone()
            };
            assert!(spec.validate().is_err(), "{bad}");
        }
    }
}
