//! A training recipe: everything `reid train` needs besides the output folder, read from a TOML
//! file (`--config`), overridden by flags, and written into the checkpoint and the model card so
//! that a model always says how it was made. Unknown keys are refused, so that a misspelt option
//! is an error, not a silently ignored wish.

use std::path::{Path, PathBuf};

use anyhow::Context;
use reid_model::backbone::ResNetConfig;
use reid_model::network::BackboneKind;
use serde::{Deserialize, Serialize};

/// The whole recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub augment: AugmentConfig,
    /// Passes over the identities (each epoch shows every identity once, P at a time).
    pub epochs: usize,
    /// Identities per batch.
    pub p: usize,
    /// Images per identity in a batch.
    pub k: usize,
    /// Seeds the batches, the augmentations and the new layers.
    pub seed: u64,
}

/// Where the training images are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A dataset root (Market-1501, DukeMTMC-reID, CUHK03-NP `detected/` or `labeled/`: its
    /// `bounding_box_train/`; MSMT17: its training lists) or a plain folder
    /// `identity/[camera/]*.jpg`.
    pub root: PathBuf,
}

/// The network and its starting point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mobilenet_v2` (torchvision's), `mobilenetv2_x1_0` (torchreid's), `osnet_x1_0`,
    /// `osnet_x0_75`, `osnet_x0_5`, `osnet_x0_25`, `osnet_ain_x1_0` .. `osnet_ain_x0_25`,
    /// `resnet50` or `resnet50_ibn_a`. With starting
    /// weights (`init`), it must be their network.
    pub backbone: String,
    /// Stride of a ResNet's last stage: 1 (the ReID default: a 16x8 map from 256x128) or 2.
    pub last_stride: usize,
    /// A reid model file (burnpack) whose backbone starts the training; empty for a random start.
    pub init: PathBuf,
    /// `bnneck` (the ID loss acts after a BatchNorm, the triplet loss before it) or `none` (both
    /// act on the pooled feature).
    pub neck: Neck,
    /// Global pooling: `avg` or `gem` (generalised mean with a learned exponent starting at 3).
    pub pooling: reid_model::Pooling,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Leading backbone stages kept frozen (0: none; 1: the stem; 1 + n: the stem and n
    /// inverted-residual blocks), which saves their backward pass.
    pub freeze: usize,
}

/// Whether a BatchNorm separates the metric and the classification spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Neck {
    Bnneck,
    None,
}

/// Which losses act, and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Weight of the identity (cross-entropy) loss; 0 turns it off.
    pub id: f64,
    /// Label smoothing of the identity loss.
    pub label_smoothing: f64,
    /// Weight of the batch-hard triplet loss; 0 turns it off.
    pub triplet: f64,
    /// Margin of the triplet loss.
    pub margin: f64,
    /// Use the soft margin `log(1 + exp(d_ap - d_an))` instead of a margin.
    pub soft_margin: bool,
    /// Weight of the center loss; 0 turns it off.
    pub center: f64,
    /// Weight of the pairwise circle loss (cosine similarities of every pair); 0 turns it off.
    pub circle: f64,
    /// Relaxation margin of the circle loss.
    pub circle_margin: f64,
    /// Scale (gamma) of the circle loss.
    pub circle_gamma: f64,
    /// Weight of the contrastive (verification) loss on every pair; 0 turns it off.
    pub contrastive: f64,
    /// Distance beyond which other identities' normalised features stop being pushed (0..2).
    pub contrastive_margin: f64,
    /// Weight of the attribute head's multi-label cross-entropy; 0 turns it off. Needs the
    /// training data's `attributes.json` (the synthetic world writes one).
    pub attribute: f64,
}

/// How the weights move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// `adam` or `sgd` (with momentum).
    pub optimizer: Optimizer,
    /// Base learning rate.
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Momentum of SGD.
    pub momentum: f64,
    /// Epochs of linear warm-up, from `warmup_factor * lr` to `lr`.
    pub warmup_epochs: f64,
    /// Where the warm-up starts, as a fraction of `lr`.
    pub warmup_factor: f64,
    /// After warm-up: `step` (times `gamma` at each milestone epoch) or `cosine` (down to 0 at
    /// the last epoch).
    pub schedule: Schedule,
    /// Epochs at which a step schedule multiplies the rate by `gamma`.
    pub milestones: Vec<usize>,
    /// Step schedule factor.
    pub gamma: f64,
    /// Largest L2 norm of each parameter's gradient; absent for no clipping.
    pub clip_grad_norm: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    Adam,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Step,
    Cosine,
}

/// Random changes to each training image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Zero padding on each side before a random crop back to the input size (pixels).
    pub pad: usize,
    /// Probability of random erasing (a rectangle of 2% to 40% of the image set to the mean).
    pub erasing: f64,
    /// Largest relative change of brightness, contrast and saturation (0: none).
    pub color_jitter: f64,
}

impl Default for TrainConfig {
    /// The bag-of-tricks baseline (Luo et al. 2019): ID + TriHard + BNNeck, Adam 3.5e-4 with
    /// warm-up, 16 x 4 batches, flip, pad-and-crop and random erasing.
    fn default() -> Self {
        Self {
            data: DataConfig::default(),
            model: ModelConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            augment: AugmentConfig::default(),
            epochs: 120,
            p: 16,
            k: 4,
            seed: 0,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::new(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: "mobilenet_v2".into(),
            last_stride: 1,
            init: PathBuf::from(crate::cmd::IMAGENET_MODEL),
            neck: Neck::Bnneck,
            pooling: reid_model::Pooling::Avg,
            height: 256,
            width: 128,
            freeze: 0,
        }
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            id: 1.0,
            label_smoothing: 0.1,
            triplet: 1.0,
            margin: 0.3,
            soft_margin: false,
            center: 0.0,
            circle: 0.0,
            circle_margin: 0.25,
            circle_gamma: 128.0,
            contrastive: 0.0,
            contrastive_margin: 1.0,
            attribute: 0.0,
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            optimizer: Optimizer::Adam,
            lr: 3.5e-4,
            weight_decay: 5e-4,
            momentum: 0.9,
            warmup_epochs: 10.0,
            warmup_factor: 0.01,
            schedule: Schedule::Step,
            milestones: vec![40, 70],
            gamma: 0.1,
            clip_grad_norm: None,
        }
    }
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip: 0.5,
            pad: 10,
            erasing: 0.5,
            color_jitter: 0.0,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML recipe; keys it does not set keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the training config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses a TOML recipe.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().trim_end())
                .context("not a valid training config (see configs/ for examples)")
        })?;
        Ok(config)
    }

    /// The recipe as TOML (written beside every checkpoint and into the model card).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a training config always serialises")
    }

    /// The network `model.backbone` (and `model.last_stride`) names.
    pub fn backbone_kind(&self) -> anyhow::Result<BackboneKind> {
        let m = &self.model;
        if m.last_stride != 1 && m.last_stride != 2 {
            anyhow::bail!("training config: model.last_stride must be 1 or 2");
        }
        Ok(match m.backbone.as_str() {
            "mobilenet_v2" => BackboneKind::MobileNetV2,
            "mobilenetv2_x1_0" => BackboneKind::MobileNetV2Torchreid,
            "osnet_x1_0" => BackboneKind::OsNetX1_0,
            "osnet_x0_75" => BackboneKind::OsNetX0_75,
            "osnet_x0_5" => BackboneKind::OsNetX0_5,
            "osnet_x0_25" => BackboneKind::OsNetX0_25,
            "osnet_ain_x1_0" => BackboneKind::OsNetAinX1_0,
            "osnet_ain_x0_75" => BackboneKind::OsNetAinX0_75,
            "osnet_ain_x0_5" => BackboneKind::OsNetAinX0_5,
            "osnet_ain_x0_25" => BackboneKind::OsNetAinX0_25,
            "resnet50" => BackboneKind::ResNet(ResNetConfig::resnet50(m.last_stride, false)),
            "resnet50_ibn_a" => BackboneKind::ResNet(ResNetConfig::resnet50(m.last_stride, true)),
            other => anyhow::bail!(
                "training config: unknown backbone `{other}` (built: mobilenet_v2, mobilenetv2_x1_0, osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25, osnet_ain_x1_0, osnet_ain_x0_75, osnet_ain_x0_5, osnet_ain_x0_25, resnet50, resnet50_ibn_a)"
            ),
        })
    }

    /// Refuses recipes that cannot train, saying which value is wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fail = |what: &str| Err(anyhow::anyhow!("training config: {what}"));
        self.backbone_kind()?;
        if self.model.freeze > 0 && !self.model.backbone.starts_with("mobilenet") {
            return fail("model.freeze works with mobilenet_v2 and mobilenetv2_x1_0 only");
        }
        if self.data.root.as_os_str().is_empty() {
            return fail("no training data: set data.root or pass --data DIR");
        }
        if self.epochs == 0 {
            return fail("epochs must be at least 1");
        }
        if self.p < 2 || self.k < 1 {
            return fail("a P x K batch needs p >= 2 and k >= 1");
        }
        let l = &self.loss;
        let weights = [
            l.id,
            l.triplet,
            l.center,
            l.circle,
            l.contrastive,
            l.attribute,
        ];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return fail("loss weights must be numbers >= 0");
        }
        if l.id <= 0.0 && l.triplet <= 0.0 && l.circle <= 0.0 && l.contrastive <= 0.0 {
            return fail(
                "at least one of loss.id, loss.triplet, loss.circle and loss.contrastive must be above 0",
            );
        }
        if (l.triplet > 0.0 || l.circle > 0.0 || l.contrastive > 0.0) && self.k < 2 {
            return fail(
                "the triplet, circle and contrastive losses need k >= 2 images per identity",
            );
        }
        if !(0.0..=2.0).contains(&l.contrastive_margin) || !(0.0..1.0).contains(&l.circle_margin) {
            return fail(
                "loss.contrastive_margin must be in [0, 2] and loss.circle_margin in [0, 1)",
            );
        }
        if !(l.circle_gamma > 0.0 && l.circle_gamma.is_finite()) {
            return fail("loss.circle_gamma must be a positive number");
        }
        if !(0.0..1.0).contains(&self.loss.label_smoothing) {
            return fail("loss.label_smoothing must be in [0, 1)");
        }
        if self.model.height < 32 || self.model.width < 32 {
            return fail("the input must be at least 32 x 32 pixels");
        }
        if self.optim.lr <= 0.0 || !self.optim.lr.is_finite() {
            return fail("optim.lr must be a positive number");
        }
        for p in [self.augment.flip, self.augment.erasing] {
            if !(0.0..=1.0).contains(&p) {
                return fail("augment.flip and augment.erasing are probabilities in [0, 1]");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_other_defaults_and_round_trips() {
        let config = TrainConfig::from_toml(
            "epochs = 3\n[data]\nroot = \"x\"\n[loss]\ncenter = 0.0005\nmargin = 0.5\n",
        )
        .unwrap();
        assert_eq!(config.epochs, 3);
        assert_eq!(config.loss.center, 0.0005);
        assert_eq!(config.loss.margin, 0.5);
        assert_eq!(config.optim.lr, 3.5e-4);
        config.validate().unwrap();
        assert_eq!(TrainConfig::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn unknown_keys_and_impossible_values_are_refused_by_name() {
        let err = TrainConfig::from_toml("[optim]\nlearning_rate = 0.1\n").unwrap_err();
        assert!(format!("{err:#}").contains("learning_rate"), "{err:#}");
        let mut config = TrainConfig::default();
        config.data.root = "x".into();
        config.k = 1;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("k >= 2"), "{err}");
        config.k = 4;
        config.model.backbone = "resnet101".into();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("resnet101"));
        config.model.backbone = "resnet50_ibn_a".into();
        config.validate().unwrap();
        assert_eq!(
            config.backbone_kind().unwrap().label(),
            "ResNet-50-IBN-a, last stride 1"
        );
        config.model.freeze = 2;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mobilenetv2_x1_0 only"));
    }
}
