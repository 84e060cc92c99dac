//! Data splits ("tiers") as written in `meta/trials/tiers.npy`.

use std::fmt;
use std::str::FromStr;

/// The split a trial belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Train,
    Validation,
    Test,
    FinalTest,
}

impl Tier {
    /// All tiers in their usual order.
    pub const ALL: [Tier; 4] = [Tier::Train, Tier::Validation, Tier::Test, Tier::FinalTest];

    /// The on-disk name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Train => "train",
            Tier::Validation => "validation",
            Tier::Test => "test",
            Tier::FinalTest => "final_test",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown tier {s:?}, expected train, validation, test or final_test")
            })
    }
}
