//! Model inputs from files (`q8_frontend::inputs`, what `q8 run / eval / quantize / bench`
//! parse `--input`, `--calib` and `--compare` with): named `.npy` per input, one `.npz` per
//! input set, int64 and bool arrays, batching of multi-input sets, and clear errors.

use q8_frontend::exec::{ExecOptions, Executor};
use q8_frontend::inputs;
use q8_frontend::ir::{Graph, Tensor};
use q8_frontend::quant::{QuantConfig, compare, prepare};
use q8_tests::data;

fn load(name: &str) -> Graph {
    q8_frontend::onnx::load(data(name)).unwrap()
}

fn path(name: &str) -> String {
    data(name).display().to_string()
}

fn err(graph: &Graph, specs: &[String]) -> String {
    inputs::read_inputs(graph, specs).unwrap_err().to_string()
}

/// `two_inputs.onnx` is `y = a + Cast(b)` with `a` f32 and `b` int64, both `[n, 3]`.
#[test]
fn named_npy_and_npz_give_the_same_inputs_in_graph_order() {
    let g = load("two_inputs.onnx");
    let (a, b) = (path("two_inputs_a.npy"), path("two_inputs_b.npy"));
    // Named specs in any order come back in graph order.
    let named = inputs::read_inputs(&g, &[format!("b={b}"), format!("a={a}")]).unwrap();
    assert_eq!(named.len(), 2);
    assert!(named[0].as_f32().is_some() && named[1].as_i64().is_some());
    let archive = inputs::read_inputs(&g, &[path("two_inputs.npz")]).unwrap();
    assert_eq!(named, archive);
    let y = Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&named)
        .unwrap();
    let want: Vec<f32> = named[0]
        .as_f32()
        .unwrap()
        .iter()
        .zip(named[1].as_i64().unwrap())
        .map(|(x, &i)| x + i as f32)
        .collect();
    assert_eq!(y[0].as_f32().unwrap(), want.as_slice());
}

#[test]
fn errors_name_the_missing_extra_or_mismatched_input_and_file() {
    let g = load("two_inputs.onnx");
    let (a, b) = (path("two_inputs_a.npy"), path("two_inputs_b.npy"));
    let e = err(&g, &[format!("a={a}")]);
    assert!(e.contains("input 'b' is not given"), "{e}");
    let e = err(&g, &[format!("a={a}"), format!("b={b}"), format!("c={b}")]);
    assert!(
        e.contains("no input 'c'") && e.contains("[\"a\", \"b\"]"),
        "{e}"
    );
    let e = err(&g, &[format!("a={a}"), format!("a={a}")]);
    assert!(e.contains("'a' is given twice"), "{e}");
    let e = err(&g, std::slice::from_ref(&a));
    assert!(e.contains("the model has inputs [\"a\", \"b\"]"), "{e}");
    // An int64 array for the f32 input: the file, the input and both types are named.
    let e = err(&g, &[format!("a={b}"), format!("b={b}")]);
    assert!(
        e.contains("two_inputs_b.npy") && e.contains("input 'a' is i64 [2, 3]"),
        "{e}"
    );
    assert!(e.contains("expects f32 [n, 3]"), "{e}");
    let e = err(
        &g,
        &[format!("a={}", path("missing.npy")), format!("b={b}")],
    );
    assert!(e.contains("missing.npy"), "{e}");
    // An archive for another model: its arrays are extra, the model's inputs named.
    let bert = load("tiny_bert/tiny_bert.onnx");
    let e = err(&bert, &[path("two_inputs.npz")]);
    assert!(
        e.contains("two_inputs.npz") && e.contains("[\"a\", \"b\"] are not inputs"),
        "{e}"
    );
    assert!(e.contains("input_ids"), "{e}");
}

#[test]
fn archives_missing_an_input_name_it() {
    let g = load("tiny_bert/tiny_bert.onnx");
    let dir = std::env::temp_dir().join(format!("q8_inputs_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ids_only.npz");
    let ids = std::fs::read(data("tiny_bert/ids_2x16.npy")).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&file).unwrap());
    zip.start_file("input_ids.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, &ids).unwrap();
    zip.finish().unwrap();
    let e = err(&g, &[file.display().to_string()]);
    assert!(
        e.contains("ids_only.npz") && e.contains("no array for input 'attention_mask'"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn multi_input_sets_batch_alike_and_disagreeing_sample_counts_are_errors() {
    let g = load("tiny_bert/tiny_bert.onnx");
    let set = inputs::read_inputs(&g, &[path("tiny_bert/calib_8x16.npz")]).unwrap();
    assert_eq!(inputs::samples(&set).unwrap(), 8);
    let b: Vec<Vec<Tensor>> = inputs::batches(&set, 3).unwrap().collect();
    assert_eq!(
        b.iter().map(|b| b[0].shape().to_vec()).collect::<Vec<_>>(),
        [vec![3, 16], vec![3, 16], vec![2, 16]]
    );
    // Batch 1 holds samples 3..6 of both inputs.
    for (input, batch) in set.iter().zip(&b[1]) {
        assert_eq!(
            batch.as_i64().unwrap(),
            &input.as_i64().unwrap()[3 * 16..6 * 16]
        );
    }
    assert_eq!(inputs::batches(&set, 0).unwrap().count(), 0);
    let short = Tensor::from_i64(vec![2, 16], vec![1; 32]).unwrap();
    let e = inputs::batches(&[set[0].clone(), short], 4)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("input 1 has shape [2, 16]") && e.contains("8 samples"),
        "{e}"
    );
}

/// The library path of `q8 quantize --calib calib.npz --compare ids=... --compare mask=...`
/// on a two-input int64 encoder.
#[test]
fn a_multi_input_model_calibrates_from_an_npz_and_compares() {
    let g = load("tiny_bert/tiny_bert.onnx");
    let options = ExecOptions { threads: 1 };
    let mut prepared = prepare(&g, &QuantConfig::x86_default(), options).unwrap();
    let calib = inputs::read_inputs(&g, &[path("tiny_bert/calib_8x16.npz")]).unwrap();
    let done = prepared
        .calibrate(inputs::batches(&calib, 3).unwrap(), |_| {})
        .unwrap();
    assert_eq!((done.batches, done.samples), (3, 8));
    let quantized = prepared.convert().unwrap();
    assert!(quantized.coverage().quantized() > 0);
    let x = inputs::read_inputs(
        &g,
        &[
            format!("input_ids={}", path("tiny_bert/ids_3x24.npy")),
            format!("attention_mask={}", path("tiny_bert/mask_3x24.npy")),
        ],
    )
    .unwrap();
    let c = compare(&quantized, inputs::batches(&x, 2).unwrap(), options).unwrap();
    assert_eq!(c.batches, 2);
    assert!(c.outputs[0].sqnr_db > 15.0, "{c}");
}

/// The inputs `q8 bench` synthesizes without `--input`: each input's own type, the batch on
/// the first axis; they run through the executor.
#[test]
fn synthetic_inputs_fit_each_input() {
    let g = load("tiny_bert/tiny_bert.onnx");
    let x = inputs::synthetic(&g, 3).unwrap();
    assert_eq!(x.len(), 2);
    assert!(x.iter().all(|t| t.as_i64().is_some() && t.shape()[0] == 3));
    let out = Executor::new(&g, ExecOptions { threads: 1 })
        .unwrap()
        .run(&x)
        .unwrap();
    assert_eq!(out[0].shape()[0], 3);
    let g = load("two_inputs.onnx");
    let x = inputs::synthetic(&g, 4).unwrap();
    assert_eq!(x[0].shape(), &[4, 3]);
    assert!(x[0].as_f32().is_some() && x[1].as_i64().is_some());
}

/// An exporter's fixed batch of 1 takes a whole batch (the runtime relaxes it), other fixed
/// dims still must match.
#[test]
fn a_declared_batch_of_one_takes_any_batch() {
    let g = load("digits_resnet.pt2e_qdq.onnx");
    let x = inputs::read_inputs(&g, &[path("digits_test_x.npy")]).unwrap();
    assert_eq!(x[0].shape()[0], 360);
    let e = err(&g, &[path("two_inputs_a.npy")]);
    assert!(
        e.contains("two_inputs_a.npy: input 'input' is f32 [2, 3]"),
        "{e}"
    );
}
