//! `custodyd demo`: the whole pipeline with no hardware and no setup.
//! (Skeleton: filled in by the demo work.)

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    todo!()
}
