//! The CPython table as a scenario corpus (`verify/scenarios/cpython-table.json`), run on the
//! model: at every operation the model must admit exactly the observation the scenario
//! expects. The runtime runs the same file under every start method
//! (`verify/tests/regressions.rs`) and `proclife conform` runs it on CPython
//! (`verify/tests/conform.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use proclife_model::{Op, Outcome, Possible};
use serde_json::Value as Json;

fn corpus() -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verify/scenarios/cpython-table.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_model_gives_every_expected_observation() {
    let corpus = corpus();
    let scenarios = corpus["scenarios"]
        .as_array()
        .expect("a list \"scenarios\"");
    assert!(
        scenarios.len() > 10,
        "the corpus has only {} scenarios",
        scenarios.len()
    );
    let mut checked = 0;
    for scenario in scenarios {
        let name = scenario["name"].as_str().expect("a name");
        let mut possibles: Vec<Possible> = Vec::new();
        for (index, json) in scenario["ops"].as_array().expect("ops").iter().enumerate() {
            let op = Op::from_json(json).unwrap_or_else(|e| panic!("{name}, op {index}: {e}"));
            let expect = Outcome::from_json(&json["expect"])
                .unwrap_or_else(|e| panic!("{name}, op {index}: expect: {e}"));
            let proc = json.get("proc").and_then(Json::as_u64).unwrap_or(0) as usize;
            if possibles.len() <= proc {
                possibles.resize(proc + 1, Possible::new());
            }
            let possible = &mut possibles[proc];
            let admitted = possible.admits(&op);
            assert_eq!(
                admitted,
                BTreeSet::from([expect.clone()]),
                "{name}, op {index} ({json}): the model admits {admitted:?}, the corpus expects {expect}"
            );
            possible
                .observe(&op, &expect)
                .unwrap_or_else(|e| panic!("{name}, op {index}: {e}"));
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} operations checked");
}
