//! The docs cannot drift from what the code does. `README.md`, every
//! `docs/*.md`, `filetests/README.md` and
//! `cranelift-patches/upstream/README.md` are checked here; the rules are
//! in `docs/ci.md` ("How the docs are checked").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The checked Markdown files, relative to the root.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![
        PathBuf::from("README.md"),
        PathBuf::from("filetests/README.md"),
        PathBuf::from("cranelift-patches/upstream/README.md"),
    ];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(root()).unwrap().to_path_buf())
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

fn read(doc: &Path) -> String {
    std::fs::read_to_string(root().join(doc)).unwrap()
}

/// A fenced code block.
struct Block {
    /// The info string's first word (`console`, `sh`, `text`, ...).
    lang: String,
    body: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// `NAME` of a `<!-- sample: NAME -->` line right before the fence.
    sample: Option<String>,
}

/// The fenced blocks of `text`, and the lines outside them (number, text).
fn parse(text: &str) -> (Vec<Block>, Vec<(usize, &str)>) {
    let (mut blocks, mut prose) = (Vec::new(), Vec::new());
    let mut open: Option<Block> = None;
    let mut last_prose = "";
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            Some(block) if line.starts_with("```") => {
                blocks.push(std::mem::replace(
                    block,
                    Block {
                        lang: String::new(),
                        body: String::new(),
                        line: 0,
                        sample: None,
                    },
                ));
                open = None;
            }
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            None if line.starts_with("```") => {
                let sample = last_prose
                    .trim()
                    .strip_prefix("<!-- sample: ")
                    .and_then(|s| s.strip_suffix(" -->"))
                    .map(str::to_string);
                open = Some(Block {
                    lang: line[3..].split([',', ' ']).next().unwrap().to_string(),
                    body: String::new(),
                    line: i + 1,
                    sample,
                });
            }
            None => {
                prose.push((i + 1, line));
                if !line.trim().is_empty() {
                    last_prose = line;
                }
            }
        }
    }
    (blocks, prose)
}

#[test]
fn transcripts_print_what_the_docs_show() {
    // Transcripts name files from the repository root, as a reader there
    // types them; `object` writes into the target directory.
    std::env::set_current_dir(root()).unwrap();
    std::fs::create_dir_all("target").unwrap();
    let cases = trycmd::TestCases::new();
    cases.register_bin("clif-eh", Path::new(env!("CARGO_BIN_EXE_clif-eh")));
    for doc in documents() {
        cases.case(root().join(doc));
    }
    cases.run();
}

/// The text of `.ci/run` and of every script it runs.
fn ci_scripts() -> String {
    [
        ".ci/run",
        "test.sh",
        "cranelift-patches/upstream/check.sh",
        "cranelift-patches/upstream/released.sh",
        "wasmer-adapter/wasmer-build/check.sh",
        "cranelift-patches/cranelift-lsda/fuzz/run.sh",
    ]
    .iter()
    .map(|p| read(Path::new(p)))
    .collect::<Vec<_>>()
    .join("\n")
}

/// `(package name, its directory)` of every workspace member.
fn packages() -> Vec<(String, PathBuf)> {
    let manifest = read(Path::new("Cargo.toml"));
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("the workspace lists its members")
        .0;
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|dir| {
            let text = read(&Path::new(dir).join("Cargo.toml"));
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("a package has a name");
            (name.to_string(), root().join(dir))
        })
        .collect()
}

/// Whether `cargo test|bench ... -p PKG [--test|--bench T]` names a
/// workspace package and one of its targets.
fn names_a_cargo_target(words: &[&str], packages: &[(String, PathBuf)]) -> bool {
    let option = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
    };
    let Some((_, dir)) = option("-p").and_then(|p| packages.iter().find(|(n, _)| n == *p)) else {
        return false;
    };
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    match (option("--test"), option("--bench")) {
        (Some(test), None) => dir.join(format!("tests/{test}.rs")).exists(),
        (None, Some(bench)) => manifest.contains(&format!("name = \"{bench}\"")),
        (None, None) => true,
        (Some(_), Some(_)) => false,
    }
}

#[test]
fn commands_in_the_docs_are_run_by_ci() {
    let ci = ci_scripts();
    let packages = packages();
    let mut transcripts = BTreeSet::new();
    let mut commands = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        for block in parse(&text).0 {
            for line in block.body.lines() {
                match block.lang.as_str() {
                    "console" => {
                        if let Some(command) = line.strip_prefix("$ ") {
                            transcripts.insert(command.to_string());
                        }
                    }
                    "sh" => {
                        let command = line.split(" #").next().unwrap().trim();
                        if !command.is_empty() && !command.starts_with('#') {
                            commands.push((doc.clone(), block.line, command.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let unchecked: Vec<String> = commands
        .iter()
        .filter(|(_, _, command)| {
            let words: Vec<&str> = command.split_whitespace().collect();
            let run_by_ci = ci.contains(command.as_str());
            let transcribed = command
                .strip_prefix("cargo run --ignore-rust-version -p clif-eh -- ")
                .is_some_and(|args| transcripts.contains(&format!("clif-eh {args}")));
            let cargo_target = matches!(words.get(..2), Some(["cargo", "test" | "bench"]))
                && names_a_cargo_target(&words, &packages);
            // A script of ours that a CI script runs.
            let script = words.first().is_some_and(|w| {
                let name = Path::new(w).file_name().unwrap().to_string_lossy();
                w.ends_with(".sh") && root().join(w).exists() && ci.contains(&*format!("/{name}"))
            });
            !(run_by_ci || transcribed || cargo_target || script)
        })
        .map(|(doc, line, command)| format!("{}:{line}: {command}", doc.display()))
        .collect();
    assert!(
        unchecked.is_empty(),
        "commands that neither CI nor a transcript runs:\n{}",
        unchecked.join("\n")
    );
}

#[test]
fn no_command_hides_in_an_indented_code_block() {
    let mut found = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        let prose = parse(&text).1;
        for k in 1..prose.len() {
            let (line, current) = prose[k];
            // An indented block follows a blank line, outside a list (whose
            // items continue with indented paragraphs).
            if !(prose[k - 1].1.trim().is_empty() && current.starts_with("    ")) {
                continue;
            }
            let previous = prose[..k]
                .iter()
                .rev()
                .find(|(_, t)| !t.trim().is_empty())
                .map_or("", |(_, t)| *t);
            let in_list = previous.starts_with(' ')
                || previous.starts_with("* ")
                || previous.starts_with("- ")
                || previous
                    .split_once(". ")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
            if !in_list {
                found.push(format!("{}:{line}: {}", doc.display(), current.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "indented code blocks (use a ```sh, ```console or ```text fence):\n{}",
        found.join("\n")
    );
}

/// The repository's top-level entries: a backticked path starting with one
/// of them names a file of ours.
fn top_level() -> BTreeSet<String> {
    std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect()
}

#[test]
fn paths_and_links_in_the_docs_exist() {
    let top = top_level();
    let mut missing = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        for (line, prose) in parse(&text).1 {
            // Backticked paths of ours.
            for (i, token) in prose.split('`').enumerate() {
                let path = token.trim_start_matches("./");
                let first = path.split('/').next().unwrap();
                let is_ours = i % 2 == 1
                    && !path.contains([' ', '<', '*', '{', '$'])
                    && (path.contains('/') || top.contains(path))
                    && (top.contains(first) || path.starts_with("../shared"));
                // `../shared` is CI's test data beside the clone: checked
                // where it is there (a bare clone elsewhere has none).
                let shared_absent =
                    path.starts_with("../shared") && !root().join("../shared").exists();
                if is_ours && !shared_absent && !root().join(path).exists() {
                    missing.push(format!("{}:{line}: `{token}`", doc.display()));
                }
            }
            // Relative links.
            for target in prose.split("](").skip(1) {
                let target = target.split(')').next().unwrap();
                let file = target.split('#').next().unwrap();
                if file.is_empty() || file.contains("://") {
                    continue;
                }
                let dir = root().join(&doc);
                if !dir.parent().unwrap().join(file).exists() {
                    missing.push(format!("{}:{line}: link {target}", doc.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths the docs name that do not exist:\n{}",
        missing.join("\n")
    );
}

/// The value of the fact `name`, recomputed.
fn fact(name: &str) -> Option<String> {
    let calls = eh_test_support::expected_outcomes(|_, _| 0).len();
    let functions = eh_test_support::SUITE_FUNCTIONS.len();
    let value = match name {
        "suite-functions" => functions,
        "suite-calls" => calls,
        "suite-throw-kinds" => calls / functions,
        "filetests" => count_files(&root().join("filetests/filetests"), "clif"),
        _ => return None,
    };
    Some(value.to_string())
}

fn count_files(dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                count_files(&p, extension)
            } else {
                usize::from(p.extension().is_some_and(|e| e == extension))
            }
        })
        .sum()
}

#[test]
fn counts_in_prose_are_recomputed() {
    let mut wrong = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        for (line, prose) in parse(&text).1 {
            // Outside inline code, where a marker may be quoted.
            let outside_code: String = prose.split('`').step_by(2).collect();
            for marked in outside_code.split("<!-- fact:").skip(1) {
                let (name, rest) = marked.split_once(" -->").expect("a fact marker closes");
                let stated = rest.split("<!-- /fact -->").next().unwrap();
                match fact(name) {
                    Some(value) if value == stated => {}
                    Some(value) => wrong.push(format!(
                        "{}:{line}: {name} is {value}, the text says {stated}",
                        doc.display()
                    )),
                    None => wrong.push(format!("{}:{line}: unknown fact {name}", doc.display())),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Samples named `prefix*` against the output in the file
/// `EH_SAMPLE_OUTPUT`: run by the script that printed it (`./test.sh` with
/// `test-sh`, the `wasmer` stage with `wasmer`, the `upstream` stage with
/// `upstream`), never in the plain run, where there is no output to
/// compare.
fn check_samples(prefix: &str) {
    let output = std::env::var("EH_SAMPLE_OUTPUT")
        .expect("EH_SAMPLE_OUTPUT names the output file of the script being checked");
    let output = std::fs::read_to_string(&output).unwrap();
    let mut checked = 0;
    for doc in documents() {
        let text = read(&doc);
        for block in parse(&text).0 {
            let Some(name) = block.sample.filter(|n| n.starts_with(prefix)) else {
                continue;
            };
            let what = format!("{}:{} (sample {name})", doc.display(), block.line);
            if let Err(e) = snapbox::Assert::new().try_eq(
                Some(&what),
                snapbox::IntoData::into_data(output.clone()),
                snapbox::IntoData::into_data(block.body),
            ) {
                panic!("{what} does not match what the script printed:\n{e}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no sample named {prefix}* in the docs");
}

#[test]
#[ignore = "run by ./test.sh with its own output"]
fn samples_of_test_sh() {
    check_samples("test-sh");
}

#[test]
#[ignore = "run by wasmer-adapter/wasmer-build/check.sh with its output"]
fn samples_of_the_wasmer_stage() {
    check_samples("wasmer");
}

#[test]
#[ignore = "run by .ci/run's upstream stage with cranelift-patches/upstream/check.sh's output"]
fn samples_of_the_upstream_stage() {
    check_samples("upstream");
}
