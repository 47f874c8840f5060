//! What our burn-flex training operations (`norm_act`, `depthwise`) share: when they apply,
//! and moving values between burn-flex tensors and plain slices.

use burn::backend::tensor::FloatTensor;
use burn::backend::{DispatchDevice, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Whether `x` lives on burn-flex under autodiff (a training device on the CPU) and is f32.
pub fn on_flex_autodiff<const D: usize>(x: &Tensor<D>) -> bool {
    let on_flex = match x.device().as_dispatch() {
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        _ => false,
    };
    on_flex && x.dtype() == DType::F32
}

/// The same tensor in row-major layout (copied only when it is not already).
pub fn contiguous(t: FloatTensor<Flex>) -> FloatTensor<Flex> {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// A row-major f32 tensor's values.
pub fn values(t: &FloatTensor<Flex>) -> &[f32] {
    // The operations admit f32 only (`on_flex_autodiff`), and pass their inputs through
    // `contiguous` first.
    t.as_slice::<f32>()
        .expect("an f32 tensor in row-major layout")
}

pub fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
    FloatTensor::<Flex>::from_data(TensorData::new(values, shape))
}

/// The rows a parallel task takes at least: a few thousand values, so that the small
/// feature maps of deep layers are not one task per row.
fn rows_per_task(row: usize) -> usize {
    (4096 / row.max(1)).max(1)
}

/// A vector of `len` values, each row of `row` values written in full by `fill(index,
/// values)`, rows in parallel. No pass zeroes the vector first.
pub fn by_rows(
    len: usize,
    row: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(row.max(1))
        .with_min_len(rows_per_task(row))
        .enumerate()
        .for_each(|(index, values)| fill(index, values));
    // SAFETY: the chunks cover `..len`, and each caller's `fill` writes every value of its
    // chunk (it zips the chunk with input rows of the same length, asserted there, or
    // zeroes it first).
    unsafe { out.set_len(len) };
    out
}
