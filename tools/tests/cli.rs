//! The `q8` binary end to end: run, eval, quantize then eval, inspect, bench model, and bad
//! input giving one clear error line with a non-zero exit code (never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
        .display()
        .to_string()
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("q8-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn q8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_q8"))
        .args(args)
        .env_remove("Q8_ISA")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "q8 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The number at the first `key` (depth first) of a one-line JSON report; `null` (how
/// serde_json writes a non-finite number, e.g. the infinite SQNR of an exact match) reads as
/// +inf.
fn json_number(s: &str, key: &str) -> f64 {
    fn find<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => {
                m.get(key).or_else(|| m.values().find_map(|x| find(x, key)))
            }
            serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, key)),
            _ => None,
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"));
    match find(&v, key) {
        Some(serde_json::Value::Null) => f64::INFINITY,
        n => n
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{key} missing or not a number in {s}")),
    }
}

/// Asserts a clean failure: non-zero exit, no panic, one `error:` line containing `needles`.
fn assert_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success");
    assert_ne!(o.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err.trim();
    assert!(line.starts_with("error: ") && !line.contains('\n'), "{err}");
    for n in needles {
        assert!(line.contains(n), "'{n}' missing from: {line}");
    }
}

#[test]
fn run_writes_int8_logits() {
    let dir = scratch("run");
    let out = dir.join("logits.npy");
    let o = q8(&[
        "run",
        &data("digits_resnet.ort_qdq.onnx"),
        "--input",
        &data("digits_test_x.npy"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(stdout(&o).contains("int8"));
    let logits = q8_frontend::npy::read(&out).unwrap();
    assert_eq!(logits.shape(), &[360, 10]);
}

#[test]
fn eval_foreign_fixtures_against_their_runtimes() {
    for (model, reference) in [
        (
            "digits_resnet.ort_qdq.onnx",
            "digits_resnet.ort_qdq_test_logits.npy",
        ),
        (
            "digits_resnet.pt2e_qdq.onnx",
            "digits_resnet.pt2e_reference_test_logits.npy",
        ),
    ] {
        let o = q8(&[
            "eval",
            &data(model),
            "--input",
            &data("digits_test_x.npy"),
            "--labels",
            &data("digits_test_y.npy"),
            "--reference",
            &data(reference),
            "--json",
        ]);
        let s = stdout(&o);
        assert!(json_number(&s, "top1_correct") >= 359.0, "{s}");
        assert!(json_number(&s, "top1_agreement") >= 359.0, "{s}");
        assert!(json_number(&s, "sqnr_db") >= 40.0, "{s}");
    }
}

#[test]
fn quantize_then_eval_digits() {
    let dir = scratch("quantize");
    let q = dir.join("digits.q8.onnx");
    let o = q8(&[
        "quantize",
        &data("digits_resnet.onnx"),
        "--calib",
        &data("digits_calib.npy"),
        "-o",
        q.to_str().unwrap(),
    ]);
    stdout(&o);
    let o = q8(&[
        "eval",
        q.to_str().unwrap(),
        "--input",
        &data("digits_test_x.npy"),
        "--labels",
        &data("digits_test_y.npy"),
        "--reference",
        &data("digits_resnet_test_logits_fp32.npy"),
        "--json",
    ]);
    let s = stdout(&o);
    eprintln!("{s}");
    assert!(s.contains("int8"), "{s}");
    assert!(json_number(&s, "top1_correct") >= 359.0, "{s}");
    assert!(json_number(&s, "sqnr_db") >= 40.0, "{s}");
}

#[test]
fn inspect_and_bench_report_json() {
    let o = q8(&["inspect", &data("digits_resnet.pt2e_qdq.onnx"), "--json"]);
    let s = stdout(&o);
    assert_eq!(json_number(&s, "int8_compute_nodes"), 13.0, "{s}");
    assert_eq!(json_number(&s, "fallback_nodes"), 0.0, "{s}");
    let o = q8(&[
        "bench",
        &data("digits_resnet.ort_qdq.onnx"),
        "--batch",
        "1,4",
        "--threads",
        "1",
        "--reps",
        "2",
        "--fp32",
        "--json",
    ]);
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 4, "{s}");
    for l in &lines {
        assert!(json_number(l, "median_ms") > 0.0);
        assert!(json_number(l, "threads") == 1.0);
        assert!(l.contains("\"precision\":\"int8\"") || l.contains("\"precision\":\"fp32\""));
    }
    assert!(
        json_number(lines[1], "batch") == 1.0 && json_number(lines[1], "speedup_vs_fp32") > 0.0
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn bad_input_gives_one_clear_error() {
    let dir = scratch("errors");
    let model = data("digits_resnet.ort_qdq.onnx");
    let x = data("digits_test_x.npy");
    assert_error(
        &q8(&["run", "/no/such/model.onnx", "--input", &x]),
        &["/no/such/model.onnx"],
    );
    let bytes = std::fs::read(&model).unwrap();
    let truncated = write(&dir, "truncated.onnx", &bytes[..bytes.len() / 3]);
    assert_error(
        &q8(&["run", &truncated, "--input", &x]),
        &["truncated.onnx"],
    );
    let mut proto = q8_frontend::onnx::decode_model(&bytes).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let node = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "MaxPool")
        .unwrap();
    node.op_type = "LpPool".into();
    let unsupported = write(
        &dir,
        "unsupported.onnx",
        &q8_frontend::onnx::encode_model(&proto),
    );
    assert_error(
        &q8(&["run", &unsupported, "--input", &x]),
        &["unsupported.onnx", "LpPool", "/pool/MaxPool"],
    );
    let small = q8_frontend::npy::NpyArray::new(vec![2, 1, 16, 16], vec![0f32; 512]).unwrap();
    let small_path = dir.join("small.npy");
    q8_frontend::npy::write(&small_path, &small).unwrap();
    assert_error(
        &q8(&["run", &model, "--input", small_path.to_str().unwrap()]),
        &["input", "[2, 1, 16, 16]"],
    );
    let mut v = vec![0f32; 1024];
    v[17] = f32::NAN;
    let nan = q8_frontend::npy::NpyArray::new(vec![1, 1, 32, 32], v).unwrap();
    let nan_path = dir.join("nan.npy");
    q8_frontend::npy::write(&nan_path, &nan).unwrap();
    assert_error(
        &q8(&["run", &model, "--input", nan_path.to_str().unwrap()]),
        &["NaN", "'input'"],
    );
    let ints = q8_frontend::npy::NpyArray::new(vec![1, 1, 32, 32], vec![0i32; 1024]).unwrap();
    let ints_path = dir.join("ints.npy");
    q8_frontend::npy::write(&ints_path, &ints).unwrap();
    // Integer arrays are read (models may take ids); this model's f32 input rejects it.
    assert_error(
        &q8(&["run", &model, "--input", ints_path.to_str().unwrap()]),
        &["'input' is i32", "expects f32"],
    );
}

#[test]
fn run_takes_named_inputs_of_several_element_types() {
    let dir = scratch("named_inputs");
    let out = dir.join("y.npy");
    let (model, a, b) = (
        data("two_inputs.onnx"),
        data("two_inputs_a.npy"),
        data("two_inputs_b.npy"),
    );
    let (ia, ib) = (format!("a={a}"), format!("b={b}"));
    // Given in the other order than the graph's: matched by name.
    stdout(&q8(&[
        "run",
        &model,
        "--input",
        &ib,
        "--input",
        &ia,
        "-o",
        out.to_str().unwrap(),
    ]));
    let y = q8_frontend::npy::read(&out).unwrap();
    assert_eq!(y.shape(), [2, 3]);
    assert_eq!(
        y.values::<f32>().unwrap(),
        [1.5, -0.5, 5.5, 13.5, 24.5, -24.5]
    );
    assert_error(&q8(&["run", &model, "--input", &a]), &["name=file.npy"]);
    assert_error(&q8(&["run", &model, "--input", &ia]), &["'b' is not given"]);
    assert_error(
        &q8(&["run", &model, "--input", &ia, "--input", &format!("c={b}")]),
        &["no input 'c'"],
    );
    assert_error(
        &q8(&["run", &model, "--input", &ia, "--input", &ia]),
        &["given twice"],
    );
}

/// `q8 bench encoder` quantizes the tiny encoder in memory and times both paths; a model
/// without token inputs is one error line naming it.
#[test]
fn bench_encoder_times_int8_and_fp32() {
    let model = data("tiny_bert/tiny_bert.onnx");
    let args = [
        "bench",
        "encoder",
        &model,
        "--batch",
        "2",
        "--seq",
        "16",
        "--threads",
        "1",
        "--vocab",
        "96",
        "--reps",
        "1",
        "--json",
    ];
    let out = stdout(&q8(&args));
    assert!(json_number(&out, "int8_median_ms") > 0.0, "{out}");
    assert!(json_number(&out, "fp32_median_ms") > 0.0, "{out}");
    let bad = q8(&[
        "bench",
        "encoder",
        &data("digits_resnet.onnx"),
        "--seq",
        "8",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("digits_resnet.onnx"), "{err}");
}

/// `q8 bench`, `q8 quantize` and `q8 eval` take the same input forms as `q8 run`: named
/// `.npy` per input (int64 ids and mask here) or one `.npz`.
#[test]
fn bench_quantize_and_eval_take_multi_input_sets() {
    let model = data("tiny_bert/tiny_bert.onnx");
    let ids = format!("input_ids={}", data("tiny_bert/ids_2x16.npy"));
    let mask = format!("attention_mask={}", data("tiny_bert/mask_2x16.npy"));
    let common = ["--threads", "1", "--reps", "1", "--json"];
    let given = [
        &["bench", &model, "--input", &ids, "--input", &mask][..],
        &common,
    ]
    .concat();
    let s = stdout(&q8(&given));
    assert_eq!(s.lines().count(), 1, "{s}");
    assert_eq!(
        json_number(&s, "batch"),
        2.0,
        "the given arrays' batch: {s}"
    );
    // Without --input every input is synthesized with its own element type.
    let s = stdout(&q8(
        &[&["bench", &model, "--batch", "3"][..], &common].concat()
    ));
    assert_eq!(json_number(&s, "batch"), 3.0, "{s}");
    assert_error(
        &q8(&["bench", &model, "--input", &ids]),
        &["'attention_mask' is not given"],
    );
    // Calibration from an archive lacking the model's inputs names the file and the inputs.
    let dir = scratch("multi_input_sets");
    let out = dir.join("q.onnx");
    assert_error(
        &q8(&[
            "quantize",
            &model,
            "--calib",
            &data("two_inputs.npz"),
            "-o",
            out.to_str().unwrap(),
        ]),
        &["two_inputs.npz", "not inputs of the model", "input_ids"],
    );
    // eval counts samples over every input: 2 rows for 32 labels is an error naming both.
    assert_error(
        &q8(&[
            "eval",
            &data("two_inputs.onnx"),
            "--input",
            &data("two_inputs.npz"),
            "--labels",
            &data("tiny_bert/ids_2x16.npy"),
        ]),
        &["32 labels for 2 inputs", "two_inputs.npz"],
    );
}
