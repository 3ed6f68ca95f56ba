//! Hostile model bytes: truncation, byte flips, absurd dims, missing and cyclic edges,
//! unsupported ops and external data all give an error naming the problem, never a panic,
//! a hang or an unbounded allocation.

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use q8_frontend::error::Error;
use q8_frontend::onnx::{self, proto::ModelProto};

fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/digits_resnet.onnx");
        std::fs::read(path).unwrap()
    })
}

fn model() -> ModelProto {
    onnx::decode_model(model_bytes()).unwrap()
}

fn import_err(m: &ModelProto) -> String {
    match onnx::load_bytes(&onnx::encode_model(m)) {
        Ok(_) => panic!("the mutated model imported without error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_unmutated_model_imports() {
    assert!(onnx::load_bytes(model_bytes()).is_ok());
}

#[test]
fn truncation_at_many_offsets_is_an_error() {
    let bytes = model_bytes();
    let step = bytes.len() / 397;
    for cut in (0..bytes.len())
        .step_by(step)
        .chain([1, 2, 3, bytes.len() - 1])
    {
        assert!(
            onnx::load_bytes(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes imported"
        );
    }
}

#[test]
fn absurd_input_dims_are_rejected() {
    // -1 is a dynamic dimension (Paddle's exporter writes it), not an error.
    for bad in [0i64, -2, -7, 1 << 40, i64::MAX] {
        let mut m = model();
        let g = m.graph.as_mut().unwrap();
        let dims = &mut g.input[0]
            .r#type
            .as_mut()
            .unwrap()
            .tensor_type
            .as_mut()
            .unwrap()
            .shape
            .as_mut()
            .unwrap()
            .dim;
        dims[2].dim_value = Some(bad);
        let msg = import_err(&m);
        assert!(
            msg.contains(&bad.to_string()) && msg.contains("input"),
            "{msg}"
        );
    }
}

#[test]
fn absurd_initializer_dims_are_rejected() {
    for bad in [0i64, -3, 1 << 40, 1 << 20] {
        let mut m = model();
        m.graph.as_mut().unwrap().initializer[0].dims[0] = bad;
        let msg = import_err(&m);
        assert!(msg.contains("fc.weight"), "{msg}");
    }
    let mut m = model();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 20, 1 << 20, 1 << 10];
    assert!(import_err(&m).contains("elements"));
}

#[test]
fn a_missing_input_names_the_node() {
    let mut m = model();
    m.graph.as_mut().unwrap().node[3].input[0] = "no_such_value".into();
    let msg = import_err(&m);
    assert!(
        msg.contains("/l1/c1/Conv") && msg.contains("no_such_value"),
        "{msg}"
    );
}

#[test]
fn a_cycle_is_rejected() {
    let mut m = model();
    let g = m.graph.as_mut().unwrap();
    let last_out = g.node.last().unwrap().output[0].clone();
    g.node[1].input[0] = last_out;
    let msg = import_err(&m);
    assert!(msg.contains("/Relu") && msg.contains("cycle"), "{msg}");
}

#[test]
fn an_unsupported_op_names_type_node_and_opset() {
    let mut m = model();
    m.graph.as_mut().unwrap().node[1].op_type = "Softsign".into();
    let err = onnx::load_bytes(&onnx::encode_model(&m)).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOp { op_type, node, opset, .. } if op_type == "Softsign" && node == "/Relu" && *opset == 13)
    );
    assert_eq!(
        err.to_string(),
        "unsupported ONNX op Softsign (node '/Relu', domain '', opset 13)"
    );
}

#[test]
fn external_data_is_a_clear_error() {
    let mut m = model();
    m.graph.as_mut().unwrap().initializer[2].data_location = 1;
    let msg = import_err(&m);
    assert!(
        msg.contains("external") && msg.contains("onnx::Conv_117"),
        "{msg}"
    );
}

#[test]
fn bad_attributes_name_the_node() {
    let mut m = model();
    let conv = &mut m.graph.as_mut().unwrap().node[0];
    conv.attribute
        .iter_mut()
        .find(|a| a.name == "strides")
        .unwrap()
        .ints = vec![0, 2];
    let msg = import_err(&m);
    assert!(
        msg.contains("Conv node '/conv1/Conv'") && msg.contains("strides"),
        "{msg}"
    );
    let mut m = model();
    let pool = &mut m.graph.as_mut().unwrap().node[2];
    pool.attribute
        .iter_mut()
        .find(|a| a.name == "kernel_shape")
        .unwrap()
        .ints = vec![1 << 40, 3];
    assert!(import_err(&m).contains("MaxPool node '/pool/MaxPool'"));
    let mut m = model();
    for opset in [6, 22] {
        m.opset_import[0].version = opset;
        assert!(import_err(&m).contains(&format!("opset {opset}")));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_truncation_is_an_error(cut in 0usize..1_238_454) {
        let bytes = model_bytes();
        prop_assert!(onnx::load_bytes(&bytes[..cut.min(bytes.len() - 1)]).is_err());
    }

    #[test]
    fn random_byte_flips_never_panic(flips in proptest::collection::vec((0usize..1_238_454, 1u8..=255), 1..8)) {
        let mut bytes = model_bytes().to_vec();
        for (at, mask) in flips {
            let i = at % bytes.len();
            bytes[i] ^= mask;
        }
        // Either outcome is fine (a flip inside weight data is still a valid model); what is
        // tested is that import returns instead of panicking, hanging or exhausting memory.
        if let Ok(g) = onnx::load_bytes(&bytes) {
            prop_assert!(g.validate().is_ok());
        }
    }

    #[test]
    fn flips_in_the_graph_structure_never_panic(flips in proptest::collection::vec((0usize..4096, 1u8..=255), 1..6)) {
        // The first 4 KiB hold the node list and attributes (nodes are field 1 of the graph,
        // serialized before the initializers): flips there hit structure, not weights.
        let mut bytes = model_bytes().to_vec();
        for (at, mask) in flips {
            bytes[at] ^= mask;
        }
        if let Ok(g) = onnx::load_bytes(&bytes) {
            prop_assert!(g.validate().is_ok());
        }
    }
}
