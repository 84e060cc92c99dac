//! What a data-efficiency experiment consists of: conditions × training-image counts × seeds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the core of a fit is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Condition {
    /// Core and readout trained together on the new data only.
    #[serde(rename = "direct")]
    Direct,
    /// Core trained on other neurons / animals, frozen; only readouts fitted on the new data.
    #[serde(rename = "transfer")]
    Transfer,
    /// Core from a network pretrained on object recognition (e.g. VGG16), frozen.
    #[serde(rename = "goal-directed")]
    GoalDirected,
}

impl Condition {
    pub const ALL: [Condition; 3] = [
        Condition::Direct,
        Condition::Transfer,
        Condition::GoalDirected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Condition::Direct => "direct",
            Condition::Transfer => "transfer",
            Condition::GoalDirected => "goal-directed",
        }
    }

    /// Legend text of the figure.
    pub fn label(self) -> &'static str {
        match self {
            Condition::Direct => "direct training",
            Condition::Transfer => "transferred core",
            Condition::GoalDirected => "goal-directed core",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown condition `{s}` (expected one of: direct, transfer, goal-directed)"
                )
            })
    }
}

/// A number of training images, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImageCount {
    Some(usize),
    All,
}

impl fmt::Display for ImageCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageCount::Some(n) => write!(f, "{n}"),
            ImageCount::All => f.write_str("all"),
        }
    }
}

impl FromStr for ImageCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "all" {
            return Ok(ImageCount::All);
        }
        match s.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "`{s}` is not a number of training images (expected a positive integer or `all`)"
            )),
            Ok(n) => Ok(ImageCount::Some(n)),
        }
    }
}

impl ImageCount {
    /// The count as a number, given how many training images the dataset has (a request above that
    /// is capped: the dataset has no more).
    pub fn resolve(self, available: usize) -> usize {
        match self {
            ImageCount::Some(n) => n.min(available),
            ImageCount::All => available,
        }
    }
}

/// One fit of the experiment; `OUT/<name>` links to its run directory (`OUT/runs/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fit {
    pub condition: Condition,
    pub images: ImageCount,
    pub seed: u64,
}

impl Fit {
    /// `<condition>_<images>_s<seed>`, e.g. `transfer_500_s2`.
    pub fn name(&self) -> String {
        format!("{}_{}_s{}", self.condition, self.images, self.seed)
    }
}

/// Every fit, in the order they run: by image count (small first, so a first look at the curve
/// comes early), then seed, then condition.
pub fn plan(conditions: &[Condition], images: &[ImageCount], seeds: &[u64]) -> Vec<Fit> {
    let mut images = images.to_vec();
    images.sort();
    images.dedup();
    let mut fits = Vec::new();
    for &im in &images {
        for &seed in seeds {
            for &condition in conditions {
                let fit = Fit {
                    condition,
                    images: im,
                    seed,
                };
                if !fits.contains(&fit) {
                    fits.push(fit);
                }
            }
        }
    }
    fits
}

/// Parses a comma-separated list (`250,500,all`, `direct,transfer`, `1,2,3`).
pub fn parse_list<T: FromStr>(text: &str, what: &str) -> Result<Vec<T>, String>
where
    T::Err: fmt::Display,
{
    let items: Vec<T> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<T>().map_err(|e| format!("{what}: {e}")))
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(format!("{what}: empty list"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parsing() {
        let fit = Fit {
            condition: Condition::GoalDirected,
            images: ImageCount::All,
            seed: 3,
        };
        assert_eq!(fit.name(), "goal-directed_all_s3");
        let images: Vec<ImageCount> = parse_list("250, 500,all", "--images").unwrap();
        assert_eq!(
            images,
            vec![
                ImageCount::Some(250),
                ImageCount::Some(500),
                ImageCount::All
            ]
        );
        assert!(
            parse_list::<ImageCount>("0", "--images")
                .unwrap_err()
                .contains("positive")
        );
        assert!(
            parse_list::<Condition>("direct,vgg", "--conditions")
                .unwrap_err()
                .contains("`vgg`")
        );
        assert_eq!(ImageCount::Some(9000).resolve(4472), 4472);
        assert_eq!(ImageCount::All.resolve(4472), 4472);
    }

    #[test]
    fn plan_orders_small_counts_first_and_deduplicates() {
        let fits = plan(
            &[Condition::Direct, Condition::Transfer],
            &[
                ImageCount::All,
                ImageCount::Some(250),
                ImageCount::Some(250),
            ],
            &[1, 2],
        );
        assert_eq!(fits.len(), 2 * 2 * 2);
        assert_eq!(fits[0].name(), "direct_250_s1");
        assert_eq!(fits[1].name(), "transfer_250_s1");
        assert_eq!(fits[7].name(), "transfer_all_s2");
    }
}
