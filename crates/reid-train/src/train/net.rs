//! The network as training sees it: the exported [`ReidNet`] (backbone and BNNeck) plus the
//! training-only identity classifier and center-loss centres, and the weighted sum of the
//! recipe's losses for one batch.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use reid_model::head::{Centers, Classifier, ClassifierConfig};
use reid_model::loss::{
    batch_hard_triplet_loss, center_loss, cross_entropy_label_smooth, TripletMargin,
};
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
}

/// One batch's losses (scalars of shape `[1]`, still on the device).
pub struct Losses {
    /// The weighted sum that is back-propagated.
    pub total: Tensor<1>,
    /// `[id, triplet, center, correct identity predictions]`, unweighted, detached.
    pub parts: Tensor<1>,
}

impl TrainNet {
    /// Adds the heads the recipe's losses need to `net`; the BNNeck's shift is frozen at 0 (as
    /// the bag-of-tricks baseline does, so that the neck only rescales).
    pub fn new(net: ReidNet, classes: usize, loss: &LossConfig, device: &Device) -> Self {
        let head = ClassifierConfig::new(net.embedding_dim(), classes);
        let mut net = net;
        net.neck.bn.beta = net.neck.bn.beta.set_require_grad(false);
        Self {
            net,
            classifier: (loss.id > 0.0).then(|| head.init(device)),
            centers: (loss.center > 0.0).then(|| head.init_centers(device)),
        }
    }

    /// Freezes the stem (`stages >= 1`) and the first `stages - 1` inverted-residual blocks.
    pub fn freeze_leading(mut self, stages: usize) -> Self {
        if stages == 0 {
            return self;
        }
        let backbone = &mut self.net.backbone;
        backbone.stem = backbone.stem.clone().freeze();
        for block in backbone.blocks.iter_mut().take(stages - 1) {
            *block = block.clone().freeze();
        }
        self
    }

    /// The recipe's losses on a batch of normalised images and their identity labels.
    pub fn losses(
        &self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        config: &LossConfig,
        neck: Neck,
    ) -> Losses {
        let device = images.device();
        let pooled = self.net.pooled(images);
        let zero = || Tensor::<1>::zeros([1], &device);
        let mut total = zero();
        let (mut id, mut triplet, mut center, mut correct) = (zero(), zero(), zero(), zero());
        if let Some(classifier) = &self.classifier {
            let feature = match neck {
                Neck::Bnneck => self.net.neck.forward(pooled.clone()),
                Neck::None => pooled.clone(),
            };
            let logits = classifier.forward(feature);
            correct = logits
                .clone()
                .detach()
                .argmax(1)
                .squeeze_dim::<1>(1)
                .equal(labels.clone())
                .int()
                .sum()
                .float();
            id = cross_entropy_label_smooth(logits, labels.clone(), config.label_smoothing as f32);
            total = total + id.clone() * config.id as f32;
        }
        if config.triplet > 0.0 {
            let margin = if config.soft_margin {
                TripletMargin::Soft
            } else {
                TripletMargin::Hard(config.margin as f32)
            };
            triplet = batch_hard_triplet_loss(pooled.clone(), labels.clone(), margin);
            total = total + triplet.clone() * config.triplet as f32;
        }
        if let Some(centers) = &self.centers {
            center = center_loss(pooled, labels, centers.centers.val());
            total = total + center.clone() * config.center as f32;
        }
        let parts = Tensor::cat(vec![id, triplet, center, correct], 0).detach();
        Losses { total, parts }
    }
}
