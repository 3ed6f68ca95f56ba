//! torchvision's ResNet-18 (BasicBlock, layers [2, 2, 2, 2], widths 64..512, 1000 classes,
//! 224x224 input) with deterministic random weights and BatchNorm statistics, for
//! benchmarks and demos without downloads. Node names follow torchvision's module names
//! (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`, ...).

use crate::error::Result;
use crate::ir::{BatchNormParams, Dim, Graph, GraphBuilder, Op, Pool, Shape, ValueId, Window2d};

/// Options of [`resnet18`].
#[derive(Clone, Copy, Debug)]
pub struct ResNet18Config {
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input height and width.
    pub image_size: usize,
    /// Seed of the weight generator (same seed, same weights).
    pub seed: u64,
}

impl Default for ResNet18Config {
    fn default() -> ResNet18Config {
        ResNet18Config {
            num_classes: 1000,
            image_size: 224,
            seed: 18,
        }
    }
}

/// SplitMix64: a tiny, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

struct Net {
    b: GraphBuilder,
    rng: Rng,
}

impl Net {
    /// Conv (no bias, He-uniform weights) + BatchNorm with plausible running statistics.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        conv: &str,
        bn: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Result<ValueId> {
        let fan_in = (cin * k * k) as f32;
        let bound = (6.0 / fan_in).sqrt();
        let w = self.rng.vec(cout * cin * k * k, -bound, bound);
        let y = self.b.conv2d(
            conv,
            x,
            w,
            None,
            cout,
            Window2d::new([k, k], [stride, stride], k / 2),
            1,
        )?;
        let params = BatchNormParams {
            gamma: self.rng.vec(cout, 0.5, 1.0),
            beta: self.rng.vec(cout, -0.1, 0.1),
            mean: self.rng.vec(cout, -0.1, 0.1),
            var: self.rng.vec(cout, 0.5, 1.5),
            epsilon: 1e-5,
        };
        self.b.batch_norm(bn, y, params)
    }

    fn basic_block(
        &mut self,
        name: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> Result<ValueId> {
        let y = self.conv_bn(
            &format!("{name}.conv1"),
            &format!("{name}.bn1"),
            x,
            cin,
            cout,
            3,
            stride,
        )?;
        let y = self.b.op(&format!("{name}.relu"), Op::Relu, &[y])?;
        let y = self.conv_bn(
            &format!("{name}.conv2"),
            &format!("{name}.bn2"),
            y,
            cout,
            cout,
            3,
            1,
        )?;
        let identity = if stride != 1 || cin != cout {
            self.conv_bn(
                &format!("{name}.downsample.0"),
                &format!("{name}.downsample.1"),
                x,
                cin,
                cout,
                1,
                stride,
            )?
        } else {
            x
        };
        let y = self.b.op(&format!("{name}.add"), Op::Add, &[y, identity])?;
        self.b.op(&format!("{name}.relu_1"), Op::Relu, &[y])
    }
}

/// Builds ResNet-18 for NCHW input `[batch, 3, S, S]` (`batch` symbolic), output logits
/// `[batch, num_classes]`. BatchNorms are separate nodes (fold them with
/// [`crate::passes::fold_batch_norm`]).
///
/// ```
/// use q8_frontend::models::{ResNet18Config, resnet18};
/// let g = resnet18(ResNet18Config { num_classes: 10, image_size: 32, seed: 1 }).unwrap();
/// assert_eq!(g.value(g.outputs()[0]).ty.shape.to_string(), "[batch, 10]");
/// assert!(g.node_by_name("layer4.1.conv2").is_some());
/// ```
///
/// # Errors
/// Only if the configuration makes a layer impossible (e.g. an image too small).
pub fn resnet18(config: ResNet18Config) -> Result<Graph> {
    let mut net = Net {
        b: GraphBuilder::new("resnet18"),
        rng: Rng(config.seed),
    };
    let s = config.image_size;
    let x = net.b.input(
        "input",
        Shape(vec![Dim::sym("batch"), 3.into(), s.into(), s.into()]),
    )?;
    let mut y = net.conv_bn("conv1", "bn1", x, 3, 64, 7, 2)?;
    y = net.b.op("relu", Op::Relu, &[y])?;
    let pool = Pool {
        window: Window2d::new([3, 3], [2, 2], 1),
        ceil_mode: false,
    };
    y = net.b.op("maxpool", Op::MaxPool(pool), &[y])?;
    let mut cin = 64;
    for (layer, cout) in [64, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let stride = if layer > 0 && block == 0 { 2 } else { 1 };
            y = net.basic_block(&format!("layer{}.{block}", layer + 1), y, cin, cout, stride)?;
            cin = cout;
        }
    }
    y = net.b.op("avgpool", Op::GlobalAveragePool, &[y])?;
    y = net.b.op("flatten", Op::Flatten { axis: 1 }, &[y])?;
    let bound = 1.0 / (512f32).sqrt();
    let w = net.rng.vec(config.num_classes * 512, -bound, bound);
    let bias = net.rng.vec(config.num_classes, -bound, bound);
    y = net.b.linear("fc", y, w, Some(bias), config.num_classes)?;
    net.b.finish(&[y])
}
