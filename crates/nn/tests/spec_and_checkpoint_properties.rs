//! Property tests of the model-spec parser and the checkpoint loader: arbitrary and mutated
//! input never panics, and whatever is accepted stays within the size bounds. Cases per
//! property: 256, or `PROPTEST_CASES`.

use dk_nn::ModelSpec;
use dk_nn::checkpoint;
use dk_nn::init::he_normal;
use dk_nn::spec::{MAX_PARAMETERS, MAX_TENSOR_ELEMENTS};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// A spec token: numbers of any size, conv/pool/dense/dropout tokens, shapes, junk.
fn token() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        1u64..64,
        1u64..100_000,
        any::<u64>(),
        Just(4_294_967_296u64),
        Just(0u64)
    ];
    prop_oneof![
        number.clone().prop_map(|n| n.to_string()),
        (number.clone(), number.clone()).prop_map(|(c, k)| format!("c{c}k{k}")),
        number.clone().prop_map(|n| format!("p{n}")),
        number.clone().prop_map(|n| format!("f{n}")),
        (0.0f32..1.5).prop_map(|p| format!("d{p}")),
        (number.clone(), number.clone(), number).prop_map(|(c, h, w)| format!("{c}x{h}x{w}")),
        "[a-z0-9x.]{0,6}",
    ]
}

/// The checks an accepted spec must pass: bounded sizes, no overflow anywhere.
fn check_accepted(spec: &ModelSpec) {
    assert!(spec.input_len() <= MAX_TENSOR_ELEMENTS);
    for shape in spec.activation_shapes() {
        assert!(shape.iter().product::<usize>() <= MAX_TENSOR_ELEMENTS);
    }
    for param in spec.parameters() {
        assert!(param.len() <= MAX_TENSOR_ELEMENTS);
    }
    assert!(spec.parameter_count() <= MAX_PARAMETERS);
    let _ = spec.flops_per_example();
    assert_eq!(ModelSpec::parse(spec.text()).unwrap(), *spec);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,40}") {
        if let Ok(spec) = ModelSpec::parse(&text) {
            check_accepted(&spec);
        }
    }

    #[test]
    fn token_lists_never_panic_and_stay_bounded(tokens in prop::collection::vec(token(), 1..7)) {
        let text = tokens.join("-");
        if let Ok(spec) = ModelSpec::parse(&text) {
            check_accepted(&spec);
        }
        if let Ok(spec) = ModelSpec::parse_with_input(&text, &[1, 28, 28]) {
            check_accepted(&spec);
        }
    }

    #[test]
    fn arbitrary_bytes_are_not_a_checkpoint(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::Builder::new().prefix("dk-nn-prop-").tempdir().unwrap();
        let path = dir.path().join(format!("arbitrary-{}.safetensors", bytes.len()));
        std::fs::write(&path, &bytes).unwrap();
        let result = checkpoint::load(&path);
        std::fs::remove_file(&path).unwrap();
        // Random bytes never carry a safetensors header with this crate's spec metadata.
        prop_assert!(result.is_err());
    }

    #[test]
    fn mutated_checkpoints_load_or_fail_cleanly(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let spec = ModelSpec::parse("6-4-3").unwrap();
        let dir = tempfile::Builder::new().prefix("dk-nn-prop-").tempdir().unwrap();
        let path = dir.path().join("mutated.safetensors");
        checkpoint::save(&path, &spec, &he_normal(&spec, 1)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        std::fs::write(&path, &bytes).unwrap();
        let loaded = checkpoint::load(&path);
        let loaded_for = checkpoint::load_for(&path, &spec);
        std::fs::remove_file(&path).unwrap();
        for values in [loaded.map(|(_, v)| v), loaded_for].into_iter().flatten() {
            // Whatever loads is finite and shaped like some spec's parameters.
            prop_assert!(values.iter().flatten().all(|v| v.is_finite()));
        }
    }
}
