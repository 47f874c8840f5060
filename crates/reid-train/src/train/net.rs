//! The network as training sees it: the exported [`ReidNet`] (backbone and BNNeck) plus the
//! training-only heads (identity classifier, center-loss centres, attribute head), and the
//! weighted sum of the recipe's losses for one batch.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor};
use reid_model::head::{Centers, Classifier, ClassifierConfig};
use reid_model::loss::{
    batch_hard_triplet_loss, binary_cross_entropy_with_logits, center_loss, circle_loss,
    contrastive_loss, cross_entropy_label_smooth, TripletMargin,
};
use reid_model::network::Backbone;
use reid_model::ReidNet;

use super::config::{LossConfig, Neck};

/// [`ReidNet`] with its training heads.
#[derive(Module, Debug)]
pub struct TrainNet {
    /// What gets exported.
    pub net: ReidNet,
    /// Identity logits (present when the ID loss acts).
    pub classifier: Option<Classifier>,
    /// Class centres (present when the center loss acts).
    pub centers: Option<Centers>,
    /// One logit per attribute label (present when the attribute loss acts).
    pub attributes: Option<Linear>,
}

/// The columns of [`Losses::parts`], in order (also `metrics.csv`'s loss columns).
pub const PARTS: [&str; 8] = [
    "id_loss",
    "triplet_loss",
    "center_loss",
    "circle_loss",
    "contrastive_loss",
    "attribute_loss",
    "id_correct",
    "attribute_correct",
];

/// One batch's losses (scalars of shape `[1]`, still on the device).
pub struct Losses {
    /// The weighted sum that is back-propagated.
    pub total: Tensor<1>,
    /// The unweighted losses and counts named by [`PARTS`], detached: `id_correct` counts the
    /// batch's right identity predictions, `attribute_correct` its images' share of right
    /// attribute labels, summed over the batch.
    pub parts: Tensor<1>,
}

impl TrainNet {
    /// Adds the heads the recipe's losses need to `net`; the BNNeck's shift is frozen at 0 (as
    /// the bag-of-tricks baseline does, so that the neck only rescales).
    /// `attributes` is the number of attribute labels (0 without an attribute head).
    pub fn new(
        net: ReidNet,
        classes: usize,
        attributes: usize,
        loss: &LossConfig,
        device: &Device,
    ) -> Self {
        let head = ClassifierConfig::new(net.embedding_dim(), classes);
        let attribute_head = LinearConfig::new(net.embedding_dim(), attributes);
        let mut net = net;
        net.neck.bn.beta = net.neck.bn.beta.set_require_grad(false);
        Self {
            net,
            classifier: (loss.id > 0.0).then(|| head.init(device)),
            centers: (loss.center > 0.0).then(|| head.init_centers(device)),
            attributes: (loss.attribute > 0.0 && attributes > 0)
                .then(|| attribute_head.init(device)),
        }
    }

    /// Freezes the stem (`stages >= 1`) and the first `stages - 1` inverted-residual blocks.
    pub fn freeze_leading(mut self, stages: usize) -> Self {
        if stages == 0 {
            return self;
        }
        let Backbone::MobileNetV2(backbone) = &mut self.net.backbone else {
            unreachable!("the recipe's validation allows MobileNetV2 only")
        };
        backbone.stem = backbone.stem.clone().freeze();
        for block in backbone.blocks.iter_mut().take(stages - 1) {
            *block = block.clone().freeze();
        }
        self
    }

    /// The recipe's losses on a batch of normalised images, their identity labels and (when
    /// the attribute loss acts) their attribute targets `[batch, labels]`.
    pub fn losses(
        &self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        attribute_targets: Option<Tensor<2>>,
        config: &LossConfig,
        neck: Neck,
    ) -> Losses {
        let device = images.device();
        let pooled = self.net.pooled(images);
        // The feature the classification heads see: after the BNNeck, or the pooled one. The neck
        // runs even when no head uses it, so that its running statistics (which the exported
        // embedding goes through) follow the trained features.
        let classified = match neck {
            Neck::Bnneck => self.net.neck.forward(pooled.clone()),
            Neck::None => pooled.clone(),
        };
        let zero = || Tensor::<1>::zeros([1], &device);
        let mut parts = vec![zero(); PARTS.len()];
        let mut total = zero();
        let mut add = |slot: usize, loss: Tensor<1>, weight: f64| {
            total = total.clone() + loss.clone() * weight as f32;
            parts[slot] = loss;
        };
        let mut correct = zero();
        if let Some(classifier) = &self.classifier {
            let logits = classifier.forward(classified.clone());
            correct = count_correct(logits.clone(), labels.clone());
            let id =
                cross_entropy_label_smooth(logits, labels.clone(), config.label_smoothing as f32);
            add(0, id, config.id);
        }
        if config.triplet > 0.0 {
            let margin = if config.soft_margin {
                TripletMargin::Soft
            } else {
                TripletMargin::Hard(config.margin as f32)
            };
            let triplet = batch_hard_triplet_loss(pooled.clone(), labels.clone(), margin);
            add(1, triplet, config.triplet);
        }
        if let Some(centers) = &self.centers {
            let center = center_loss(pooled.clone(), labels.clone(), centers.centers.val());
            add(2, center, config.center);
        }
        if config.circle > 0.0 {
            let circle = circle_loss(
                pooled.clone(),
                labels.clone(),
                config.circle_margin as f32,
                config.circle_gamma as f32,
            );
            add(3, circle, config.circle);
        }
        if config.contrastive > 0.0 {
            let contrastive = contrastive_loss(pooled, labels, config.contrastive_margin as f32);
            add(4, contrastive, config.contrastive);
        }
        let mut attribute_correct = zero();
        if let (Some(head), Some(targets)) = (&self.attributes, attribute_targets) {
            let logits = head.forward(classified);
            let [_, width] = logits.dims();
            attribute_correct = sigmoid(logits.clone().detach())
                .greater_elem(0.5)
                .float()
                .equal(targets.clone())
                .float()
                .sum()
                / width as f32;
            add(
                5,
                binary_cross_entropy_with_logits(logits, targets),
                config.attribute,
            );
        }
        parts[6] = correct;
        parts[7] = attribute_correct;
        Losses {
            total,
            parts: Tensor::cat(parts, 0).detach(),
        }
    }
}

/// How many rows of `logits` have their largest value at their label.
fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    logits
        .detach()
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum()
        .float()
}
