//! What an in-silico experiment must know about the model's input besides the model itself:
//! image shape, the run's image normalization, the range and contrast of the training images,
//! and the behaviour / pupil values to hold fixed.
//!
//! Stimuli are built and written in the **dataset's image units** (grey levels as stored in
//! `data/images`); [`InputContext::to_model`] maps them to what the model was trained on.

use crate::data::{Dataset, Normalizer, Tier};

/// The input side of a loaded run, as a plain struct the run layer fills.
///
/// How to fill it from a run and its training data: [`InputContext::from_training_data`] does
/// all of it from the recording as loaded (`Dataset`, raw values) and the run's normalizer. By hand:
/// - `image_shape`: the model's `facts.in_shape` (the recording's `image_shape`);
/// - `image_normalization`: `Some((mean, std))` when the run z-scored images (`data.normalize`
///   and not `data.exclude_images`; the normalizer's `image_stats`), else `None`;
/// - `grey`, `range`, `norm`: mean pixel value, min / max pixel value and the mean over training
///   images of ‖image − grey‖₂, all in dataset units, over the train tier;
/// - `behavior`, `pupil_center`: the training means *as the model sees them* (normalized like the
///   training batches), `None` when the model does not use them;
/// - `response_scale`: the per-neuron factor from model outputs to dataset response units (the
///   response std the normalizer divided by; `None` keeps model units).
#[derive(Debug, Clone, PartialEq)]
pub struct InputContext {
    /// (channels, height, width) of one image.
    pub image_shape: [usize; 3],
    /// Scalar (mean, std) with which the run z-scored images; `None` when the model sees images
    /// in dataset units.
    pub image_normalization: Option<(f64, f64)>,
    /// The grey level (mean pixel value of the training images, dataset units): stimuli are
    /// deviations from it, and the "blank" image is uniformly this value.
    pub grey: f64,
    /// Smallest and largest pixel value the model saw in training (dataset units); every
    /// stimulus is clipped into it.
    pub range: [f64; 2],
    /// Contrast: the mean L2 norm ‖image − grey‖₂ of the training images (dataset units). MEIs
    /// are held at this norm; gratings get the same root-mean-square contrast.
    pub norm: f64,
    /// Behaviour values fed with every stimulus (model units, length = the model's behaviour
    /// variables), or `None`.
    pub behavior: Option<Vec<f32>>,
    /// Pupil position fed with every stimulus (model units, 2 values), or `None`.
    pub pupil_center: Option<Vec<f32>>,
    /// Per-neuron factor from model outputs to response units of the dataset, or `None`.
    pub response_scale: Option<Vec<f64>>,
}

/// Why a context cannot be built or used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("input context: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ContextError {
    ContextError::Invalid {
        field,
        message: message.into(),
    }
}

impl InputContext {
    /// Values per image (C·H·W).
    pub fn image_len(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// Root-mean-square contrast (per pixel) that matches [`norm`](Self::norm).
    pub fn rms_contrast(&self) -> f64 {
        self.norm / (self.image_len().max(1) as f64).sqrt()
    }

    /// Checks that every field is usable (finite, positive where it must be).
    pub fn validate(&self) -> Result<(), ContextError> {
        if self.image_shape.contains(&0) {
            return Err(invalid(
                "image_shape",
                format!("expected no zero size, got {:?}", self.image_shape),
            ));
        }
        if let Some((m, s)) = self.image_normalization
            && !(m.is_finite() && s.is_finite() && s > 0.0)
        {
            return Err(invalid(
                "image_normalization",
                format!("expected a finite mean and a positive std, got ({m}, {s})"),
            ));
        }
        let [lo, hi] = self.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(invalid(
                "range",
                format!("expected finite min < max, got [{lo}, {hi}]"),
            ));
        }
        if !(self.grey.is_finite() && (lo..=hi).contains(&self.grey)) {
            return Err(invalid(
                "grey",
                format!(
                    "expected a value inside range [{lo}, {hi}], got {}",
                    self.grey
                ),
            ));
        }
        if !(self.norm.is_finite() && self.norm > 0.0) {
            return Err(invalid(
                "norm",
                format!("expected a positive contrast, got {}", self.norm),
            ));
        }
        for (field, values) in [
            ("behavior", &self.behavior),
            ("pupil_center", &self.pupil_center),
        ] {
            if let Some(v) = values
                && v.iter().any(|x| !x.is_finite())
            {
                return Err(invalid(field, "expected finite values"));
            }
        }
        if let Some(p) = &self.pupil_center
            && p.len() != 2
        {
            return Err(invalid(
                "pupil_center",
                format!("expected 2 values (x, y), got {}", p.len()),
            ));
        }
        Ok(())
    }

    /// Maps images in dataset units to model input (the run's z-scoring, if any).
    pub fn to_model(&self, images: &[f32]) -> Vec<f32> {
        match self.image_normalization {
            Some((m, s)) => images
                .iter()
                .map(|&v| ((v as f64 - m) / s) as f32)
                .collect(),
            None => images.to_vec(),
        }
    }

    /// The factor d(model input)/d(dataset units) (1 / std, or 1).
    pub fn input_gain(&self) -> f64 {
        self.image_normalization.map_or(1.0, |(_, s)| 1.0 / s)
    }

    /// The context of a run trained on `dataset` (raw values as loaded): statistics over its
    /// train tier; `normalizer` is the run's (`PreparedDataset::normalizer`), `None` when
    /// `data.normalize = false`. Behaviour and pupil position are their training means, normalized
    /// as in training, whenever the recording has them (the ensemble passes them only to models
    /// that use them).
    pub fn from_training_data(
        dataset: &Dataset,
        normalizer: Option<&Normalizer>,
    ) -> Result<Self, ContextError> {
        let trials = dataset.tier_indices(Tier::Train);
        if trials.is_empty() {
            return Err(invalid(
                "train tier",
                format!("{} has no training trials", dataset.data_key),
            ));
        }
        let len = dataset.image_len();
        let image = |t: usize| &dataset.images[t * len..(t + 1) * len];
        let (mut sum, mut lo, mut hi) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &t in &trials {
            for &v in image(t) {
                sum += v as f64;
                lo = lo.min(v as f64);
                hi = hi.max(v as f64);
            }
        }
        let grey = sum / (trials.len() * len) as f64;
        let norm = trials
            .iter()
            .map(|&t| {
                image(t)
                    .iter()
                    .map(|&v| (v as f64 - grey).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum::<f64>()
            / trials.len() as f64;
        let mean_of = |values: &Option<Vec<f32>>, width: usize| {
            values.as_ref().map(|v| {
                let mut mean = vec![0.0f64; width];
                for &t in &trials {
                    for (m, &x) in mean.iter_mut().zip(&v[t * width..(t + 1) * width]) {
                        *m += x as f64 / trials.len() as f64;
                    }
                }
                mean
            })
        };
        let n_trials = dataset.n_trials().max(1);
        let behavior = mean_of(
            &dataset.behavior,
            dataset.behavior.as_ref().map_or(0, |b| b.len() / n_trials),
        )
        .map(|m| match &normalizer {
            Some(n) => n.behavior(&m),
            None => m,
        });
        let pupil_center = mean_of(&dataset.pupil_center, 2).map(|m| match &normalizer {
            Some(n) => n.pupil_center(&m),
            None => m,
        });
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let context = InputContext {
            image_shape: dataset.image_shape,
            image_normalization: normalizer.as_ref().and_then(|n| n.image_stats),
            grey,
            range: [lo, hi],
            norm,
            behavior: behavior.map(to_f32),
            pupil_center: pupil_center.map(to_f32),
            response_scale: normalizer.as_ref().map(|n| {
                n.response_precision
                    .iter()
                    .map(|p| if *p > 0.0 { 1.0 / p } else { 1.0 })
                    .collect()
            }),
        };
        context.validate()?;
        Ok(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> InputContext {
        InputContext {
            image_shape: [1, 4, 5],
            image_normalization: Some((100.0, 50.0)),
            grey: 100.0,
            range: [0.0, 255.0],
            norm: 20.0,
            behavior: None,
            pupil_center: Some(vec![0.0, 0.1]),
            response_scale: None,
        }
    }

    #[test]
    fn validation_names_the_field_and_the_model_mapping_z_scores() {
        let c = context();
        c.validate().unwrap();
        assert_eq!(c.to_model(&[150.0, 100.0]), vec![1.0, 0.0]);
        assert!((c.rms_contrast() - 20.0 / 20f64.sqrt()).abs() < 1e-12);
        let mut bad = context();
        bad.grey = 300.0;
        assert!(bad.validate().unwrap_err().to_string().contains("grey"));
        let mut bad = context();
        bad.norm = 0.0;
        assert!(bad.validate().unwrap_err().to_string().contains("norm"));
        let mut bad = context();
        bad.pupil_center = Some(vec![0.0]);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("pupil_center")
        );
    }
}
