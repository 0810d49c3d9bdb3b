//! Prints the CustomResourceDefinitions as YAML, or with `--reference` the FediInstance
//! reference in Markdown; `make crds` writes them into `crds/` and `docs/reference/`.

use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    let crd = fedi_operator::crd::FediInstance::crd();
    match std::env::args().nth(1).as_deref() {
        None => print!("{}", serde_yaml::to_string(&crd)?),
        Some("--reference") => print!("{}", fedi_operator::reference::markdown(&crd)),
        Some(other) => anyhow::bail!("unknown argument {other}; usage: crdgen [--reference]"),
    }
    Ok(())
}
