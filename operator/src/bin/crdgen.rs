//! Prints the CustomResourceDefinitions as YAML; `make crds` writes them into `crds/`.

use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    print!(
        "{}",
        serde_yaml::to_string(&fedi_operator::crd::FediInstance::crd())?
    );
    Ok(())
}
