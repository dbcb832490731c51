//! Every WGSL file in `shaders/` parses and validates with naga, opens with its header, and
//! carries `enable subgroups;` exactly when it uses a subgroup builtin (the WGSL spec and
//! Tint require the directive; without a builtin it would ask for the feature needlessly).
//! No GPU needed.

use std::path::{Path, PathBuf};

use dk_tensor::{ENABLE_SUBGROUPS, wgsl_for_naga};

/// The builtin functions and values of the WGSL `subgroups` extension.
const SUBGROUP_BUILTINS: [&str; 27] = [
    "subgroupAdd",
    "subgroupAll",
    "subgroupAnd",
    "subgroupAny",
    "subgroupBallot",
    "subgroupBroadcast",
    "subgroupBroadcastFirst",
    "subgroupElect",
    "subgroupExclusiveAdd",
    "subgroupExclusiveMul",
    "subgroupInclusiveAdd",
    "subgroupInclusiveMul",
    "subgroupMax",
    "subgroupMin",
    "subgroupMul",
    "subgroupOr",
    "subgroupShuffle",
    "subgroupShuffleDown",
    "subgroupShuffleUp",
    "subgroupShuffleXor",
    "subgroupXor",
    "quadBroadcast",
    "quadSwapDiagonal",
    "quadSwapX",
    "quadSwapY",
    "subgroup_invocation_id",
    "subgroup_size",
];

fn shader_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("shaders/ folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("wgsl"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .wgsl files found in {}",
        dir.display()
    );
    files
}

/// The subgroup builtins named in `source` outside `//` comments.
fn subgroup_builtins_used(source: &str) -> Vec<&'static str> {
    let mut used: Vec<&'static str> = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .flat_map(|code| code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter_map(|word| SUBGROUP_BUILTINS.iter().copied().find(|b| *b == word))
        .collect();
    used.sort_unstable();
    used.dedup();
    used
}

/// Whether `source` has the directive among its leading directives (before any declaration).
fn enables_subgroups(source: &str) -> bool {
    source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default().trim())
        .filter(|code| !code.is_empty())
        .take_while(|code| code.starts_with("enable ") || code.starts_with("requires "))
        .any(|code| code == ENABLE_SUBGROUPS)
}

#[test]
fn every_shader_parses_and_validates() {
    for path in shader_files() {
        let source = std::fs::read_to_string(&path).unwrap();
        let source = wgsl_for_naga(&source);
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        let header = source
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        assert!(
            header.starts_with("//"),
            "{}: must open with its header comment (after its directives)",
            path.display()
        );
    }
}

#[test]
fn a_shader_enables_subgroups_exactly_when_it_uses_them() {
    let mut using = Vec::new();
    for path in shader_files() {
        let source = std::fs::read_to_string(&path).unwrap();
        let used = subgroup_builtins_used(&source);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if used.is_empty() {
            assert!(
                !enables_subgroups(&source),
                "{name}: `{ENABLE_SUBGROUPS}` without any subgroup builtin asks for the feature needlessly"
            );
        } else {
            assert!(
                enables_subgroups(&source),
                "{name}: uses {} but does not open with `{ENABLE_SUBGROUPS}` (required by the WGSL spec and Tint)",
                used.join(", ")
            );
            using.push(name);
        }
    }
    // The kernels known to need the feature are among them, so the scan itself works.
    for name in ["conv2d_gemm.wgsl", "matmul_subgroup.wgsl"] {
        assert!(using.iter().any(|n| n == name), "{name} in {using:?}");
    }
}

#[test]
fn the_builtin_scan_skips_comments_and_longer_names() {
    let source = "// subgroupBroadcast in a comment\nfn f(@builtin(subgroup_size) s: u32) {\n  let subgroupAddress = 1u; _ = subgroupAdd(s); // subgroupMax\n}\n";
    assert_eq!(
        subgroup_builtins_used(source),
        ["subgroupAdd", "subgroup_size"]
    );
    assert!(enables_subgroups(
        "enable f16;\n// note\nenable subgroups;\nfn f() {}\n"
    ));
    assert!(!enables_subgroups("fn f() {}\nenable subgroups;\n"));
    assert!(!enables_subgroups("// enable subgroups;\nfn f() {}\n"));
}
