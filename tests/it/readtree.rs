//! nix/readTree evaluated with real Nix on fixture trees
//! (tests/fixtures/readtree/<name>) and on trees generated into temporary
//! directories when git cannot hold them (empty folders, odd names).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

/// A tree under tests/fixtures/readtree.
fn tree_dir(name: &str) -> PathBuf {
    fixture(&format!("readtree/{name}"))
}

/// `body`, to evaluate strictly to JSON. In scope: `readTree` (the
/// library), `lib` (tests/fixtures/readtree/lib.nix), `root` (the tree's
/// path) and `tree` (`root` read with `args = { inherit lib readTree; }`).
/// Paths are passed as strings, never pasted into Nix source.
fn eval(root: &Path, body: &str) -> NixExpr {
    NixExpr::new(format!(
        "{{ readTreeDir, treeDir, libFile }}:
        let
          readTree = import (/. + readTreeDir) {{ }};
          lib = import (/. + libFile);
          root = /. + treeDir;
          tree = readTree {{ path = root; args = {{ inherit lib readTree; }}; }};
        in {body}"
    ))
    .arg("readTreeDir", repo().join("nix/readTree"))
    .arg("treeDir", root)
    .arg("libFile", tree_dir("lib.nix"))
}

fn assert_error(stderr: &str, message: &str) {
    assert!(
        stderr.contains(&format!("error: {message}")),
        "expected the error\n  {message}\ngot:\n{stderr}"
    );
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn library_exposes_the_tvl_interface() {
    let names = eval(&tree_dir("basic"), "builtins.attrNames readTree").value();
    assert_eq!(
        names,
        json!([
            "__functor",
            "drvTargets",
            "fix",
            "gather",
            "mkLabel",
            "restrictFolder"
        ])
    );
}

/// One tree covering the layout rules: which files are imported, skip
/// markers, hidden entries, non-attrset nodes, and the markers on every
/// attribute-set node. Every file readTree must not import throws.
#[test]
fn basic_tree_is_read_exactly() {
    let tree = eval(&tree_dir("basic"), "tree").value();
    let expected = json!({
        "__readTree": [],
        "__readTreeChildren": ["a", "list", "nodefault", "str", "sub"],
        "a": {
            "__readTree": ["a"],
            "__readTreeChildren": ["b", "s", "x"],
            "b": {
                "__readTree": ["a", "b"],
                "__readTreeChildren": ["c"],
                "at": ["a", "b"],
                "value": 1,
                "c": { "__readTree": ["a", "b", "c"], "__readTreeChildren": [], "leaf": true },
            },
            "s": "a string",
            "x": { "__readTree": ["a", "x"], "__readTreeChildren": [], "at": ["a", "x"] },
        },
        "list": [1, 2],
        "nodefault": { "__readTree": ["nodefault"], "__readTreeChildren": [] },
        "str": "just a string",
        "sub": { "__readTree": ["sub"], "__readTreeChildren": [], "mine": true },
    });
    assert_eq!(tree, expected);
}

#[test]
fn root_default_nix_is_imported_only_with_root_dir_false() {
    let root = tree_dir("rootdir");
    let default = eval(&root, "tree").value();
    assert_eq!(
        default,
        json!({
            "__readTree": [], "__readTreeChildren": ["a"],
            "a": { "__readTree": ["a"], "__readTreeChildren": [], "at": ["a"] },
        })
    );
    let imported = eval(
        &root,
        "readTree { path = root; args = { }; rootDir = false; }",
    )
    .value();
    assert_eq!(
        imported,
        json!({
            "__readTree": [], "__readTreeChildren": ["a"], "root": true, "at": [],
            "a": { "__readTree": ["a"], "__readTreeChildren": [], "at": ["a"] },
        })
    );
}

#[test]
fn a_file_that_is_not_a_function_is_an_error_naming_it() {
    let root = tree_dir("notfunction");
    for (attr, file, kind) in [
        ("set", "set/default.nix", "set"),
        ("files.str", "files/str.nix", "string"),
    ] {
        let stderr = eval(&root, &format!("tree.{attr}")).error();
        assert_error(
            &stderr,
            &format!(
                "readTree: {} evaluates to a {kind}, but readTree calls every file it imports with the depot's arguments; make it a function, e.g. `{{ depot, pkgs, ... }}: …`",
                display(&root.join(file))
            ),
        );
    }
}

#[test]
fn a_nix_file_beside_a_folder_of_the_same_name_is_an_error() {
    let root = tree_dir("clash");
    let dir = root.join("bad");
    let message = format!(
        "readTree: {dir}/foo.nix and the folder {dir}/foo/ both define //bad/foo; rename one of them (or put a .skip-tree file in the folder if it holds no Nix code)",
        dir = display(&dir)
    );
    // Any use of the folder's node fails, not just the clashing attribute.
    assert_error(&eval(&root, "tree.bad.foo").error(), &message);
    assert_error(&eval(&root, "tree.bad.bar").error(), &message);
    // A skipped folder adds no attribute, so it cannot clash.
    assert_eq!(
        eval(&root, "tree.ok").value(),
        json!({ "__readTree": ["ok"], "__readTreeChildren": ["foo"], "foo": "the file" })
    );
}

#[test]
fn top_level_skip_tree_is_an_error() {
    let root = tree_dir("topskip");
    assert_error(
        &eval(&root, "tree").error(),
        &format!(
            "readTree: {} is the root of the tree but has a .skip-tree file, so there is nothing to read; remove it (use .skip-tree only in sub-folders)",
            display(&root)
        ),
    );
}

#[test]
fn plain_derivation_keeps_its_identity() {
    let root = tree_dir("drv");
    let got = eval(
        &root,
        r#"let
          node = tree.plain;
          direct = import (root + "/plain/default.nix") { };
        in {
          inherit (node) type name __readTree __readTreeChildren;
          child = node.child.isChild;
          sameDrvPath = node.drvPath == direct.drvPath;
          sameOutPath = node.outPath == direct.outPath;
          drvPath = node.drvPath;
        }"#,
    )
    .value();
    assert_eq!(got["type"], "derivation");
    assert_eq!(got["name"], "plain");
    assert_eq!(got["__readTree"], json!(["plain"]));
    assert_eq!(got["__readTreeChildren"], json!(["child"]));
    assert_eq!(got["child"], true);
    assert_eq!(got["sameDrvPath"], true);
    assert_eq!(got["sameOutPath"], true);
    let drv_path = got["drvPath"].as_str().unwrap();
    assert!(
        drv_path.starts_with("/nix/store/") && drv_path.ends_with("-plain.drv"),
        "{drv_path}"
    );
}

#[test]
fn derivation_with_override_attrs_gets_children_through_passthru() {
    let root = tree_dir("drv");
    let got = eval(
        &root,
        r#"let
          direct = import (root + "/overridable/default.nix") { inherit lib; };
          project = node: {
            inherit (node) type passthruNames __readTree __readTreeChildren;
            drvPath = node.drvPath;
          };
        in {
          overridable = project tree.overridable // {
            inherit (tree.overridable) own;
            child = tree.overridable.child.isChild;
          };
          file = project tree.file;
          direct = direct.drvPath;
          fileDirect = (lib.mkDrv { name = "file"; }).drvPath;
        }"#,
    )
    .value();
    assert_eq!(
        got["overridable"]["passthruNames"],
        json!(["__readTree", "__readTreeChildren", "child", "own"])
    );
    assert_eq!(got["overridable"]["own"], "kept");
    assert_eq!(got["overridable"]["child"], true);
    assert_eq!(got["overridable"]["__readTree"], json!(["overridable"]));
    assert_eq!(got["overridable"]["__readTreeChildren"], json!(["child"]));
    assert_eq!(got["overridable"]["type"], "derivation");
    assert_eq!(got["overridable"]["drvPath"], got["direct"]);
    assert_eq!(
        got["file"]["passthruNames"],
        json!(["__readTree", "__readTreeChildren"])
    );
    assert_eq!(got["file"]["__readTree"], json!(["file"]));
    assert_eq!(got["file"]["__readTreeChildren"], json!([]));
    assert_eq!(got["file"]["drvPath"], got["fileDirect"]);
}

#[test]
fn gather_is_depth_first_with_subtargets_last() {
    let root = tree_dir("gather");
    let labels = |eligible: &str| {
        eval(
            &root,
            &format!("map readTree.mkLabel (readTree.gather ({eligible}) tree)"),
        )
        .value()
    };
    assert_eq!(
        labels(r#"t: (t.type or null) == "derivation""#),
        json!([
            "a", "a/child", "a:s2", "a:s1", "b/x", "b/z", "d:one", "d:two"
        ])
    );
    assert_eq!(
        labels("_: true"),
        json!([
            "", "a", "a/child", "a:s2", "a:s1", "a:data", "b", "b/x", "b/y", "b/z", "d", "d:one",
            "d:two"
        ])
    );
}

#[test]
fn subtargets_keep_their_parent_location_and_identity() {
    let root = tree_dir("gather");
    let got = eval(
        &root,
        r#"let
          targets = readTree.gather (t: t ? __subtarget) tree;
          s2 = builtins.head targets;
        in {
          count = builtins.length targets;
          inherit (s2) __readTree __readTreeChildren __subtarget;
          sameDrvPath = s2.drvPath == tree.a.s2.drvPath;
          data = (builtins.elemAt targets 2).note;
        }"#,
    )
    .value();
    assert_eq!(
        got,
        json!({
            "count": 5,
            "__readTree": ["a"],
            "__readTreeChildren": [],
            "__subtarget": "s2",
            "sameDrvPath": true,
            "data": "not a derivation",
        })
    );
}

#[test]
fn bad_subtargets_are_errors_naming_the_node() {
    let root = tree_dir("badsubtarget");
    assert_error(
        &eval(&root, "readTree.gather (_: true) tree.a").error(),
        "readTree: //a lists `missing` in meta.ci.targets, but has no attribute of that name; remove it from the list or add the attribute",
    );
    assert_error(
        &eval(&root, "readTree.gather (_: true) tree.b").error(),
        "readTree: subtarget `s` of //b is a string; meta.ci.targets must name attribute sets (usually derivations)",
    );
}

#[test]
fn mk_label_names_nodes_and_subtargets() {
    let got = eval(
        &tree_dir("basic"),
        r#"map readTree.mkLabel [
          { __readTree = [ "a" "b" ]; }
          { __readTree = [ "a" "b" ]; __subtarget = "sub"; }
          { __readTree = [ ]; }
        ]"#,
    )
    .value();
    assert_eq!(got, json!(["a/b", "a/b:sub", ""]));
}

#[test]
fn drv_targets_lists_direct_derivation_children_and_keeps_meta() {
    let root = tree_dir("gather");
    let got = eval(
        &root,
        r#"let d = tree.d; in {
          inherit (d) meta three;
          names = builtins.attrNames d;
          plain = (readTree.drvTargets { x = lib.drv "x"; y = 1; }).meta;
        }"#,
    )
    .value();
    assert_eq!(
        got,
        json!({
            "meta": { "description": "kept", "ci": { "keep": true, "targets": ["one", "two"] } },
            "three": 3,
            "names": ["__readTree", "__readTreeChildren", "meta", "one", "three", "two"],
            "plain": { "ci": { "targets": ["x"] } },
        })
    );
}

/// The `args` fixture's files all return the arguments they were called
/// with, so a node shows exactly what readTree passed.
fn args_nodes(args: &str, extra: &str) -> Value {
    eval(
        &tree_dir("args"),
        &format!(
            r#"let t = readTree ({{ path = root; args = {args}; }} // {extra});
            in {{ node = removeAttrs t.node [ "deeper" ]; deeper = t.node.deeper; f = t.files.f; }}"#
        ),
    )
    .value()
}

#[test]
fn args_set_gets_located_at() {
    let got = args_nodes(r#"{ depot = "d"; locatedAt = "overridden"; }"#, "{ }");
    assert_eq!(
        got,
        json!({
            "node": { "depot": "d", "locatedAt": ["node"], "__readTree": ["node"], "__readTreeChildren": ["deeper"] },
            "deeper": { "depot": "d", "locatedAt": ["node", "deeper"], "__readTree": ["node", "deeper"], "__readTreeChildren": [] },
            "f": { "depot": "d", "locatedAt": ["files", "f"], "__readTree": ["files", "f"], "__readTreeChildren": [] },
        })
    );
}

#[test]
fn args_function_is_called_with_located_at_only() {
    // Strict formals: the function must get exactly `{ locatedAt }`.
    let args = r#"{ locatedAt }: { where = builtins.concatStringsSep "/" locatedAt; }"#;
    let got = args_nodes(args, "{ }");
    assert_eq!(got["node"]["where"], "node");
    assert_eq!(got["deeper"]["where"], "node/deeper");
    assert_eq!(
        got["f"],
        json!({ "where": "files/f", "locatedAt": ["files", "f"], "__readTree": ["files", "f"], "__readTreeChildren": [] })
    );
    let strict = eval(
        &tree_dir("args"),
        &format!("(readTree {{ path = root; args = {args}; }}).strict"),
    )
    .value();
    assert_eq!(
        strict,
        json!({ "locatedAt": ["strict"], "where": "strict", "__readTree": ["strict"], "__readTreeChildren": [] })
    );
}

#[test]
fn filter_sees_location_and_located_args() {
    let filter =
        r#"{ filter = parts: args: { tag = builtins.concatStringsSep "." parts; saw = args; }; }"#;
    let got = args_nodes(r#"{ depot = "d"; }"#, filter);
    assert_eq!(
        got["deeper"],
        json!({
            "tag": "node.deeper",
            "saw": { "depot": "d", "locatedAt": ["node", "deeper"] },
            "__readTree": ["node", "deeper"],
            "__readTreeChildren": [],
        })
    );
    assert_eq!(got["f"]["tag"], "files.f");
    assert_eq!(got["node"]["tag"], "node");
}

#[test]
fn restrict_folder_hides_the_folder_from_everyone_else() {
    let root = tree_dir("restrict");
    let depot = r#"readTree.fix (self: readTree {
          path = root;
          args = { depot = self; };
          filter = readTree.restrictFolder {
            folder = "experimental";
            exceptions = [ [ "allowed" ] ];
            reason = "experimental code may change at any time";
          };
        })"#;
    let got = eval(
        &root,
        &format!(
            "let depot = {depot}; in {{ inherit (depot.experimental) self; inner = depot.experimental.inner.v; allowed = depot.allowed.v; other = depot.denied.other; }}"
        ),
    )
    .value();
    assert_eq!(
        got,
        json!({ "self": "s", "inner": "s", "allowed": "s", "other": "s" })
    );
    let message = |at: &str| {
        format!(
            "readTree: {at} may not use depot.experimental: experimental code may change at any time (only code under //experimental and the exceptions given to restrictFolder may use it)"
        )
    };
    assert_error(
        &eval(&root, &format!("({depot}).denied.v")).error(),
        &message("//denied"),
    );
    // Exceptions are exact locations, as in TVL: not their sub-folders.
    assert_error(
        &eval(&root, &format!("({depot}).allowed.inner.v")).error(),
        &message("//allowed/inner"),
    );
}

#[test]
fn fix_ties_the_knot() {
    let got = eval(
        &tree_dir("basic"),
        "readTree.fix (self: { a = 1; b = self.a + 1; })",
    )
    .value();
    assert_eq!(got, json!({ "a": 1, "b": 2 }));
}

#[test]
fn scoped_args_are_in_scope_of_every_file() {
    let root = tree_dir("scoped");
    let got = eval(
        &root,
        r#"let t = readTree { path = root; args = { }; scopedArgs = { greeting = "hello"; }; };
        in { x = t.x.g; f = t.files.f; }"#,
    )
    .value();
    assert_eq!(got, json!({ "x": "hello", "f": "hello!" }));
    // Without scopedArgs the files are imported plainly, so the name is unbound.
    let stderr = eval(&root, "(readTree { path = root; args = { }; }).x.g").error();
    assert!(stderr.contains("undefined variable 'greeting'"), "{stderr}");
}

/// Names that are not valid bare attribute names, or that would be
/// interpolated if readTree ever built Nix source from them.
#[test]
fn odd_names_are_data_not_source() {
    let depot = Depot::new();
    let node = "{ locatedAt, ... }: { at = locatedAt; }";
    let folders = [
        "a b",
        "x\"y",
        "${x}",
        "$HOME",
        "back\\slash",
        "ünï",
        "semi;colon",
        "dots.in.name",
        "it's",
        "dir.nix",
    ];
    for folder in folders {
        depot.write(&format!("{folder}/default.nix"), node);
    }
    depot.write("files/q'uote.nix", node);
    depot.write("files/with space.nix", node);
    depot.write("files/twice.nix.nix", node);
    depot.write("files/${y}.nix", "_: \"\\${y}\"");

    let root = depot.path();
    let names = eval(root, "tree.__readTreeChildren").value();
    let mut expected: Vec<&str> = folders.iter().copied().chain(["files"]).collect();
    expected.sort();
    assert_eq!(names, json!(expected));
    for folder in folders {
        let got = eval(root, &format!("builtins.getAttr {} tree", nix_str(folder))).value();
        assert_eq!(
            got,
            json!({ "__readTree": [folder], "__readTreeChildren": [], "at": [folder] }),
            "{folder}"
        );
    }
    let labels = eval(
        root,
        "map readTree.mkLabel (readTree.gather (t: t ? at) tree.files)",
    )
    .value();
    assert_eq!(
        labels,
        json!(["files/q'uote", "files/twice.nix", "files/with space"])
    );
    assert_eq!(
        eval(
            root,
            &format!("builtins.getAttr {} tree.files", nix_str("${y}"))
        )
        .value(),
        json!("${y}")
    );
}

/// Git cannot hold empty folders, so this tree is generated.
#[test]
fn empty_and_non_nix_folders_are_empty_nodes() {
    let depot = Depot::new();
    std::fs::create_dir_all(depot.path().join("empty")).unwrap();
    std::fs::create_dir_all(depot.path().join("outer/inner-empty")).unwrap();
    depot.write("docs/README.md", "no Nix here");
    let got = eval(depot.path(), "tree").value();
    assert_eq!(
        got,
        json!({
            "__readTree": [],
            "__readTreeChildren": ["docs", "empty", "outer"],
            "docs": { "__readTree": ["docs"], "__readTreeChildren": [] },
            "empty": { "__readTree": ["empty"], "__readTreeChildren": [] },
            "outer": {
                "__readTree": ["outer"],
                "__readTreeChildren": ["inner-empty"],
                "inner-empty": { "__readTree": ["outer", "inner-empty"], "__readTreeChildren": [] },
            },
        })
    );
}

#[test]
fn prefix_places_the_tree_inside_a_larger_depot() {
    let tree = eval(
        &tree_dir("basic"),
        "let t = readTree { path = root; args = { inherit lib readTree; }; prefix = [ \"top\" ]; };
         in { root = t.__readTree; ab = t.a.b.__readTree; at = t.a.b.at; label = readTree.mkLabel t.a.b; }",
    )
    .value();
    assert_eq!(
        tree,
        json!({ "root": ["top"], "ab": ["top", "a", "b"], "at": ["top", "a", "b"], "label": "top/a/b" })
    );
}

/// This repository is a readTree depot too; it reads only nix/, so build
/// output (target/) and sources are never walked.
#[test]
fn the_repository_is_a_depot() {
    let value = NixExpr::new(
        "{ repo }: let depot = import (/. + repo) { }; in {
           top = depot.__readTreeChildren;
           library = builtins.attrNames depot.nix.buildkite;
           located = depot.nix.readTree.__readTree;
           hasReadTree = depot.nix.readTree ? gather;
         }",
    )
    .arg("repo", repo())
    .value();
    assert_eq!(
        value,
        json!({
            "top": ["nix"],
            "library": ["__readTree", "__readTreeChildren", "keyForDrv", "mkBuildCommand", "mkDrvmap", "mkPipeline"],
            "located": ["nix", "readTree"],
            "hasReadTree": true,
        })
    );
}
