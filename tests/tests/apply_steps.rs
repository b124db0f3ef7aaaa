//! `cranelift-patches/upstream/apply-steps.sh`, which makes the Cranelift
//! series and the Wasmer patch from overlay files and hooks: what it
//! places and commits, and what it refuses.

use pretty_assertions::assert_eq;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cranelift-patches/upstream/apply-steps.sh"
);

/// A scratch directory with a git repository `tree` holding `src/lib.rs`.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("apply-steps-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["tree/src", "overlay/src", "steps"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("tree/src/lib.rs"), "mod a;\n").unwrap();
        let scratch = Self { root };
        scratch.git(&["init", "-q"]);
        scratch.git(&["add", "-A"]);
        scratch.git(&["commit", "-q", "-m", "base"]);
        scratch
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .arg("-C")
            .arg(self.root.join("tree"))
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.root.join(path), text).unwrap();
    }

    fn apply(&self) -> Output {
        let dir = |d: &str| self.root.join(d);
        Command::new("bash")
            .arg(SCRIPT)
            .args([dir("tree"), dir("overlay"), dir("steps")])
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("bash runs")
    }

    fn tree_file(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join("tree").join(path)).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The hook of step 1: `mod b;` after `mod a;`.
const HOOK: &str = "\
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1 +1,2 @@
 mod a;
+mod b;
";

fn one_step(scratch: &Scratch) {
    scratch.write("overlay/src/b.rs", "pub fn b() {}\n");
    scratch.write("steps/0001-add-b.files", "src/b.rs\n");
    scratch.write("steps/0001-add-b.hooks", HOOK);
    scratch.write("steps/0001-add-b.msg", "Add b\n");
}

#[test]
fn a_step_places_its_files_applies_its_hooks_and_commits() {
    let scratch = Scratch::new("ok");
    one_step(&scratch);
    // A step may add files and no hooks.
    scratch.write("overlay/src/c.rs", "pub fn c() {}\n");
    scratch.write("steps/0002-add-c.files", "src/c.rs\n");
    scratch.write("steps/0002-add-c.msg", "Add c\n");
    let out = scratch.apply();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    assert_eq!(scratch.tree_file("src/lib.rs"), "mod a;\nmod b;\n");
    assert_eq!(scratch.tree_file("src/b.rs"), "pub fn b() {}\n");
    let log = scratch.git(&["log", "--format=%s", "--name-only", "HEAD~2..HEAD"]);
    assert_eq!(log, "Add c\n\nsrc/c.rs\nAdd b\n\nsrc/b.rs\nsrc/lib.rs\n");
}

#[test]
fn an_overlay_file_no_step_names_is_refused() {
    let scratch = Scratch::new("orphan");
    one_step(&scratch);
    scratch.write("overlay/src/c.rs", "\n");
    let out = scratch.apply();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("overlay/src/c.rs is in no step's .files"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_named_file_missing_from_the_overlay_is_refused() {
    let scratch = Scratch::new("missing");
    one_step(&scratch);
    scratch.write("steps/0001-add-b.files", "src/b.rs\nsrc/gone.rs\n");
    let out = scratch.apply();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("names src/gone.rs, which"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_new_file_that_exists_in_the_tree_is_refused() {
    let scratch = Scratch::new("exists");
    one_step(&scratch);
    scratch.write("overlay/src/lib.rs", "mod z;\n");
    scratch.write("steps/0001-add-b.files", "src/b.rs\nsrc/lib.rs\n");
    let out = scratch.apply();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("src/lib.rs already exists in the tree; edit it with a hook"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_hook_whose_context_is_gone_is_refused() {
    let scratch = Scratch::new("stale");
    one_step(&scratch);
    scratch.write(
        "steps/0001-add-b.hooks",
        &HOOK.replace(" mod a;", " mod x;"),
    );
    let out = scratch.apply();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("patch does not apply"),
        "{}",
        stderr(&out)
    );
    assert_eq!(scratch.tree_file("src/lib.rs"), "mod a;\n");
    assert!(!Path::new(&scratch.root.join("tree/.git/rebase-apply")).exists());
}
