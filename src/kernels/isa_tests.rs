//! Every instruction-set path of the hot kernels ([`Isa`]) against the portable one, forward and
//! backward: the channel-wise convolutions (within float rounding; AVX-512 equals AVX2 exactly),
//! ELU, the fused evaluation batch norm + ELU, training batch norm and the Gaussian read-out
//! (the same numbers on every path). Paths this CPU lacks are named on stderr and skipped.

use super::batch_norm::{self, NormShape};
use super::channelwise::{ChannelwiseShape, forward_on, input_grad_on, weight_grad_on};
use super::elu;
use super::isa::Isa;
use super::readout::{self, ReadoutShape, Wanted};

/// Deterministic values in about [−3, 3].
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 37 + salt * 11) % 101) as f32 - 50.0) / 17.0)
        .collect()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

/// Every path this CPU runs computes the forward pass, the input gradient and the filter
/// gradient of depthwise and shared-input convolutions like the portable one (within float
/// rounding), and AVX-512 equals AVX2 exactly. Paths the CPU lacks are named on stderr.
#[test]
fn every_isa_path_matches_the_portable_one_forward_and_backward() {
    let shapes = [
        // The lurz2020 depthwise 13×13 (smaller batch), and an odd width that leaves partial
        // chunks on every path.
        (2, 3, false, 22, 50, 13, 13, 6, 6),
        (2, 2, false, 9, 21, 3, 5, 1, 2),
        // The 1→C input conv, 15×15 valid.
        (2, 4, true, 36, 64, 15, 15, 0, 0),
    ];
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        eprintln!("not tested here: the {isa} path (this CPU lacks it)");
    }
    for (batch, channels, shared_input, in_h, in_w, kernel_h, kernel_w, pad_h, pad_w) in shapes {
        let shape = ChannelwiseShape {
            batch,
            channels,
            shared_input,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            pad_h,
            pad_w,
        };
        let x = values(batch * shape.in_channels() * in_h * in_w, 1);
        let w = values(channels * kernel_h * kernel_w, 2);
        let g = values(batch * channels * shape.out_h() * shape.out_w(), 3);
        let reference = (
            forward_on(Isa::Portable, &shape, &x, &w),
            input_grad_on(Isa::Portable, &shape, &w, &g),
            weight_grad_on(Isa::Portable, &shape, &x, &g),
        );
        assert!(
            reference.0.iter().any(|&v| v != 0.0),
            "{shape:?}: zero output"
        );
        let mut results = Vec::new();
        for isa in Isa::supported() {
            let got = (
                forward_on(isa, &shape, &x, &w),
                input_grad_on(isa, &shape, &w, &g),
                weight_grad_on(isa, &shape, &x, &g),
            );
            close(&got.0, &reference.0, &format!("{isa} forward {shape:?}"));
            close(&got.1, &reference.1, &format!("{isa} input grad {shape:?}"));
            close(
                &got.2,
                &reference.2,
                &format!("{isa} filter grad {shape:?}"),
            );
            results.push((isa, got));
        }
        let fused: Vec<_> = results
            .iter()
            .filter(|(isa, _)| *isa != Isa::Portable)
            .collect();
        for pair in fused.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].1,
                "{} vs {} differ",
                pair[0].0, pair[1].0
            );
        }
    }
}

/// The portable path is a plain direct convolution: check it against the textbook sum.
#[test]
fn portable_forward_is_the_direct_sum() {
    let shape = ChannelwiseShape {
        batch: 2,
        channels: 3,
        shared_input: false,
        in_h: 7,
        in_w: 10,
        kernel_h: 3,
        kernel_w: 5,
        pad_h: 1,
        pad_w: 2,
    };
    let x = values(2 * 3 * 7 * 10, 4);
    let w = values(3 * 15, 5);
    let got = forward_on(Isa::Portable, &shape, &x, &w);
    let (oh, ow) = (shape.out_h(), shape.out_w());
    for b in 0..2 {
        for c in 0..3 {
            for i in 0..oh {
                for j in 0..ow {
                    let mut want = 0.0f64;
                    for u in 0..3 {
                        for v in 0..5 {
                            let (r, q) = (i + u, j + v);
                            if r < 1 || q < 2 || r > 7 || q > 11 {
                                continue;
                            }
                            let xv = x[((b * 3 + c) * 7 + r - 1) * 10 + q - 2];
                            want += (w[c * 15 + u * 5 + v] * xv) as f64;
                        }
                    }
                    let v = got[((b * 3 + c) * oh + i) * ow + j] as f64;
                    assert!((v - want).abs() < 1e-4, "({b},{c},{i},{j}): {v} vs {want}");
                }
            }
        }
    }
}

/// The fused paths are the fused multiply-add sum in tap order (kernel row, then column, from
/// +0; filters in channel order for a shared input's gradient), bit for bit: how the blocks are
/// laid out, and which padding they skip, changes nothing.
#[test]
fn fused_paths_are_the_fused_sum_in_tap_order() {
    let shape = ChannelwiseShape {
        batch: 2,
        channels: 3,
        shared_input: true,
        in_h: 13,
        in_w: 21,
        kernel_h: 5,
        kernel_w: 4,
        pad_h: 2,
        pad_w: 1,
    };
    let (h, w, kh, kw) = (13, 21, 5, 4);
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let x = values(2 * h * w, 6);
    let weights = values(3 * kh * kw, 7);
    let g = values(2 * 3 * oh * ow, 8);
    // Zero-padded read of a plane with `rows × cols` values at offset (top, left).
    let at = |plane: &[f32], cols: usize, rows: usize, r: isize, c: isize| {
        if r < 0 || c < 0 || r >= rows as isize || c >= cols as isize {
            0.0
        } else {
            plane[r as usize * cols + c as usize]
        }
    };
    for isa in fast_paths() {
        let out = forward_on(isa, &shape, &x, &weights);
        let grad = input_grad_on(isa, &shape, &weights, &g);
        for b in 0..2 {
            let plane = &x[b * h * w..(b + 1) * h * w];
            for c in 0..3 {
                for (r, q) in (0..oh).flat_map(|r| (0..ow).map(move |q| (r, q))) {
                    let mut acc = 0.0f32;
                    for (i, j) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
                        let v = at(plane, w, h, (r + i) as isize - 2, (q + j) as isize - 1);
                        acc = weights[(c * kh + i) * kw + j].mul_add(v, acc);
                    }
                    let got = out[((b * 3 + c) * oh + r) * ow + q];
                    assert_eq!(got.to_bits(), acc.to_bits(), "{isa} forward");
                }
            }
            for (r, q) in (0..h).flat_map(|r| (0..w).map(move |q| (r, q))) {
                let mut acc = 0.0f32;
                for c in 0..3 {
                    let gp = &g[(b * 3 + c) * oh * ow..(b * 3 + c + 1) * oh * ow];
                    // Full correlation with the flipped filter: tap (i, j) of the flipped filter
                    // is (kh − 1 − i, kw − 1 − j) of the filter.
                    for (i, j) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
                        let v = at(
                            gp,
                            ow,
                            oh,
                            (r + i) as isize - (kh - 1 - 2) as isize,
                            (q + j) as isize - (kw - 1 - 1) as isize,
                        );
                        let tap = weights[(c * kh + kh - 1 - i) * kw + kw - 1 - j];
                        acc = tap.mul_add(v, acc);
                    }
                }
                let got = grad[b * h * w + r * w + q];
                assert_eq!(
                    got.to_bits(),
                    acc.to_bits(),
                    "{isa} input grad ({b},{r},{q})"
                );
            }
        }
    }
}

/// The paths to compare with the portable one (this CPU's), naming the ones it lacks.
fn fast_paths() -> Vec<Isa> {
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        eprintln!("not tested here: the {isa} path (this CPU lacks it)");
    }
    Isa::supported()
        .into_iter()
        .filter(|&i| i != Isa::Portable)
        .collect()
}

#[test]
fn elu_and_its_gradient_agree_on_every_path() {
    let x: Vec<f32> = values(70_001, 6).iter().map(|v| v * 10.0).collect();
    let g = values(x.len(), 7);
    let y = elu::elu_values_on(Isa::Portable, &x);
    assert!(y.iter().zip(&x).all(|(y, x)| if *x > 0.0 {
        y == x
    } else {
        *y <= 0.0 && *y > -1.0 - 1e-6
    }));
    let dx = elu::elu_grad_values_on(Isa::Portable, &y, &g);
    for isa in fast_paths() {
        assert_eq!(elu::elu_values_on(isa, &x), y, "{isa} ELU");
        assert_eq!(
            elu::elu_grad_values_on(isa, &y, &g),
            dx,
            "{isa} ELU gradient"
        );
    }
}

#[test]
fn fused_eval_batch_norm_elu_is_the_multiply_add_then_elu_on_every_path() {
    let (batch, channels, plane) = (3, 5, 1000);
    let x = values(batch * channels * plane, 8);
    let gain: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32 * 0.3).collect();
    let offset: Vec<f32> = (0..channels).map(|c| c as f32 * 0.2 - 0.4).collect();
    let affine: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i / plane % channels;
            gain[c] * v + offset[c]
        })
        .collect();
    let want = elu::elu_values_on(Isa::Portable, &affine);
    for isa in Isa::supported() {
        let got = elu::affine_elu_values_on(isa, &x, plane, &gain, &offset);
        assert_eq!(got, want, "{isa}");
    }
}

#[test]
fn training_batch_norm_with_and_without_elu_agrees_on_every_path_forward_and_backward() {
    let shape = NormShape {
        batch: 4,
        channels: 3,
        plane: 37,
    };
    let n = shape.batch * shape.channels * shape.plane;
    let x = values(n, 9);
    let g = values(n, 10);
    let (scale, shift) = ([0.5f32, 1.0, 2.0], [0.1f32, -0.2, 0.0]);
    let reference = batch_norm::forward_on(Isa::Portable, &shape, &x, &scale, &shift, 1e-5);
    let stats = (&reference.mean[..], &reference.variance[..]);
    let grads = batch_norm::backward_on(Isa::Portable, &shape, &x, &scale, stats, 1e-5, &g);
    assert!(grads.scale.iter().any(|&v| v != 0.0));
    let elu = batch_norm::forward_elu_on(Isa::Portable, &shape, &x, &scale, &shift, 1e-5);
    let inputs = (&x[..], &elu.output[..]);
    let elu_grads =
        batch_norm::backward_elu_on(Isa::Portable, &shape, inputs, &scale, stats, 1e-5, &g);
    assert!(elu.output.iter().any(|&v| v < 0.0) && elu.output.iter().any(|&v| v > 0.0));
    for isa in fast_paths() {
        let out = batch_norm::forward_on(isa, &shape, &x, &scale, &shift, 1e-5);
        assert_eq!(out, reference, "{isa} forward");
        let got = batch_norm::backward_on(isa, &shape, &x, &scale, stats, 1e-5, &g);
        assert_eq!(got, grads, "{isa} backward");
        let out = batch_norm::forward_elu_on(isa, &shape, &x, &scale, &shift, 1e-5);
        assert_eq!(out, elu, "{isa} forward with ELU");
        let got = batch_norm::backward_elu_on(isa, &shape, inputs, &scale, stats, 1e-5, &g);
        assert_eq!(got, elu_grads, "{isa} backward with ELU");
    }
}

#[test]
fn gaussian_readout_agrees_on_every_path_forward_and_backward() {
    let shape = ReadoutShape {
        batch: 11,
        channels: 19,
        height: 7,
        width: 9,
        neurons: 41,
    };
    let map = values(
        shape.batch * shape.channels * shape.height * shape.width,
        11,
    );
    // Positions spread over [−1.2, 1.2], some outside the map.
    let positions: Vec<f32> = values(shape.batch * shape.neurons * 2, 12)
        .iter()
        .map(|v| v * 0.4)
        .collect();
    let features = values(shape.channels * shape.neurons, 13);
    let grad = values(shape.batch * shape.neurons, 14);
    let all = Wanted {
        map: true,
        positions: true,
        features: true,
    };
    let operands = (&map[..], &positions[..], &features[..]);
    let y = readout::forward_on(Isa::Portable, &shape, &map, &positions, &features);
    let grads = readout::backward_on(Isa::Portable, &shape, operands, &grad, all);
    assert!(y.iter().any(|&v| v != 0.0));
    for isa in fast_paths() {
        let got = readout::forward_on(isa, &shape, &map, &positions, &features);
        assert_eq!(got, y, "{isa} forward");
        let got = readout::backward_on(isa, &shape, operands, &grad, all);
        assert_eq!(got, grads, "{isa} backward");
    }
}
