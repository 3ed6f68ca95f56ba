//! `.npy` / `.npz` reading and writing: round trips, files NumPy wrote, and malformed input.

use std::io::Write;
use std::path::PathBuf;

use proptest::prelude::*;
use q8_frontend::npy::{self, DType, NpyArray, NpyError};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A `.npy` file with a hand-written header (any version), as NumPy or other writers lay it out.
fn raw_npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn sample() -> NpyArray {
    NpyArray::new(
        vec![2, 3],
        vec![1.5f32, -2.0, 0.0, f32::MAX, f32::MIN_POSITIVE, -0.25],
    )
    .unwrap()
}

#[test]
fn round_trips_every_dtype() {
    let arrays = [
        sample(),
        NpyArray::new(vec![3], vec![1.0f64, -1e300, 0.5]).unwrap(),
        NpyArray::new(vec![1, 2], vec![i64::MIN, i64::MAX]).unwrap(),
        NpyArray::new(vec![2, 1, 1], vec![-7i32, 9]).unwrap(),
        NpyArray::new(vec![4], vec![0u8, 1, 254, 255]).unwrap(),
        NpyArray::new(vec![2, 2], vec![-128i8, 127, 0, -1]).unwrap(),
        NpyArray::new(vec![3], vec![true, false, true]).unwrap(),
        NpyArray::new(vec![], vec![42.0f32]).unwrap(),
        NpyArray::new(vec![0, 5], Vec::<f32>::new()).unwrap(),
    ];
    for a in arrays {
        let bytes = npy::to_bytes(&a);
        let header_len = (bytes.len() - a.len() * a.dtype().size() - 10) as u16;
        assert_eq!(bytes[8..10], header_len.to_le_bytes());
        assert_eq!(
            (bytes.len() - a.len() * a.dtype().size()) % 64,
            0,
            "data is 64-byte aligned"
        );
        assert_eq!(npy::from_bytes(&bytes).unwrap(), a);
    }
}

#[test]
fn writes_numpys_exact_header() {
    let bytes = npy::to_bytes(&NpyArray::new(vec![3], vec![1u8, 2, 3]).unwrap());
    let header = std::str::from_utf8(&bytes[10..bytes.len() - 3]).unwrap();
    assert_eq!(
        header.trim_end(),
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }"
    );
    assert!(header.ends_with('\n'));
}

#[test]
fn reads_versions_2_and_3_and_python2_headers() {
    let data: Vec<u8> = [1i32, -2, 3, 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let v2 = raw_npy(
        2,
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }\n",
        &data,
    );
    let v3 = raw_npy(
        3,
        "{\"shape\": (4,), \"descr\": \"<i4\", \"fortran_order\": False}",
        &data,
    );
    let py2 = raw_npy(
        1,
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 2L), }  \n",
        &data,
    );
    for bytes in [v2, v3, py2] {
        let a = npy::from_bytes(&bytes).unwrap();
        assert_eq!(a.values::<i32>().unwrap(), &[1, -2, 3, 4]);
        assert_eq!(a.dtype(), DType::I32);
    }
}

#[test]
fn reads_big_endian_and_native_order_data() {
    let be: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let a = npy::from_bytes(&raw_npy(
        1,
        "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
        &be,
    ))
    .unwrap();
    assert_eq!(a.values::<f32>().unwrap(), &[1.5, -2.0]);
    let be: Vec<u8> = [i64::MIN, 7].iter().flat_map(|v| v.to_be_bytes()).collect();
    let a = npy::from_bytes(&raw_npy(
        1,
        "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }",
        &be,
    ))
    .unwrap();
    assert_eq!(a.values::<i64>().unwrap(), &[i64::MIN, 7]);
    let native = npy::from_bytes(&raw_npy(
        1,
        "{'descr': '=i4', 'fortran_order': False, 'shape': (1,), }",
        &5i32.to_le_bytes(),
    ))
    .unwrap();
    assert_eq!(native.values::<i32>().unwrap(), &[5]);
    // Written back little-endian, as NumPy's default.
    assert_eq!(npy::from_bytes(&npy::to_bytes(&a)).unwrap(), a);
}

#[test]
fn rejects_unsupported_layouts_with_clear_errors() {
    let f4 = [0u8; 8];
    let cases = [
        (
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
            "fortran",
        ),
        (
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            "dtype",
        ),
        (
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
            "dtype",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            "data bytes",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
            "non-negative",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 'y'}",
            "key",
        ),
        ("{'descr': '<f4', 'shape': (2,), }", "fortran_order"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            "large",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
            "overflow",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
            "expected",
        ),
        ("{'descr: '<f4'}", "expected"),
        ("", "expected"),
    ];
    for (header, needle) in cases {
        let err = npy::from_bytes(&raw_npy(1, header, &f4))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{header}: {err}");
    }
    let bad_bool = raw_npy(
        1,
        "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
        &[1, 2],
    );
    assert!(
        npy::from_bytes(&bad_bool)
            .unwrap_err()
            .to_string()
            .contains("element 1")
    );
    let mut huge_header = b"\x93NUMPY\x02\x00".to_vec();
    huge_header.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        npy::from_bytes(&huge_header)
            .unwrap_err()
            .to_string()
            .contains("cap")
    );
    assert!(
        npy::from_bytes(b"\x93NUMPY\x04\x00")
            .unwrap_err()
            .to_string()
            .contains("version")
    );
    assert!(
        npy::from_bytes(b"PK\x03\x04")
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    let deep = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        "1,".repeat(65)
    );
    assert!(
        npy::from_bytes(&raw_npy(1, &deep, &[0; 4]))
            .unwrap_err()
            .to_string()
            .contains("dimensions")
    );
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = npy::to_bytes(&sample());
    for len in 0..bytes.len() {
        assert!(
            npy::from_bytes(&bytes[..len]).is_err(),
            "truncated at {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(npy::from_bytes(&longer).is_err(), "trailing byte");
}

#[test]
fn typed_access_and_shape_checks() {
    let a = sample();
    let err = a.values::<u8>().unwrap_err();
    assert!(matches!(
        err,
        NpyError::Dtype {
            expected: DType::U8,
            actual: DType::F32
        }
    ));
    assert!(NpyArray::new(vec![2, 2], vec![1u8, 2, 3]).is_err());
    assert!(NpyArray::new(vec![usize::MAX, 2], vec![1u8]).is_err());
    assert_eq!(NpyArray::new(vec![], vec![1u8]).unwrap().len(), 1);
}

#[test]
fn file_round_trip_and_missing_file() {
    let path = std::env::temp_dir().join(format!("q8-npy-test-{}.npy", std::process::id()));
    npy::write(&path, &sample()).unwrap();
    assert_eq!(npy::read(&path).unwrap(), sample());
    std::fs::remove_file(&path).unwrap();
    let err = npy::read(&path).unwrap_err().to_string();
    assert!(err.contains("q8-npy-test"), "{err}");
}

#[test]
fn reads_numpys_npz() {
    let npz = npy::read_npz(data_dir().join("observers.npz")).unwrap();
    assert_eq!(npz.len(), 24);
    let w = npz.get("weight__conv_w").unwrap();
    assert_eq!(w.shape(), &[16, 3, 3, 3]);
    assert_eq!(w.values::<f32>().unwrap().len(), 432);
    let single = npz.get("single_value__0").unwrap();
    assert_eq!(single.values::<f32>().unwrap(), &[0.731]);
    assert!(
        npz.get("nope")
            .unwrap_err()
            .to_string()
            .contains("\"nope\"")
    );
}

fn zip_with(members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn reads_compressed_npz_and_rejects_bad_members() {
    let a = npy::to_bytes(&sample());
    let b = npy::to_bytes(&NpyArray::new(vec![2], vec![7i64, 8]).unwrap());
    let archive = zip_with(
        &[("a.npy", a.clone()), ("b.npy", b)],
        zip::CompressionMethod::Deflated,
    );
    let npz = npy::npz_from_bytes(&archive).unwrap();
    assert_eq!(npz.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(npz.get("a").unwrap(), &sample());
    assert_eq!(npz.get("b").unwrap().values::<i64>().unwrap(), &[7, 8]);

    let bad = zip_with(
        &[("bad.npy", a[..20].to_vec())],
        zip::CompressionMethod::Stored,
    );
    assert!(
        npy::npz_from_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad.npy")
    );
    for len in [0, 10, archive.len() / 2, archive.len() - 1] {
        assert!(
            npy::npz_from_bytes(&archive[..len]).is_err(),
            "npz truncated at {len}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn byte_flips_never_panic(pos in any::<usize>(), byte in any::<u8>(), npz in any::<bool>()) {
        let mut bytes = if npz {
            std::fs::read(data_dir().join("observers.npz")).unwrap()
        } else {
            npy::to_bytes(&sample())
        };
        // Bias flips towards the headers, where the parsing happens.
        let pos = if pos % 2 == 0 { pos % 128 } else { pos % bytes.len() };
        bytes[pos] = byte;
        // Either outcome is fine; what matters is no panic and, on success, a consistent array.
        if npz {
            if let Ok(archive) = npy::npz_from_bytes(&bytes) {
                prop_assert!(archive.len() <= 24);
            }
        } else if let Ok(a) = npy::from_bytes(&bytes) {
            prop_assert_eq!(a.shape().iter().product::<usize>(), a.len());
        }
    }

    #[test]
    fn f32_round_trip(shape in proptest::collection::vec(0usize..5, 0..4), seed in any::<u32>()) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 + seed as f32).sin() * 1e3).collect();
        let a = NpyArray::new(shape, values).unwrap();
        prop_assert_eq!(npy::from_bytes(&npy::to_bytes(&a)).unwrap(), a);
    }
}
