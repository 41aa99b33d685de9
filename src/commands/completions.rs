//! `completions`: shell completion scripts generated from the clap definition.

use clap::CommandFactory;

use crate::error::Result;
use crate::ui::Ui;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args, _ui: &Ui) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(
        args.shell,
        &mut crate::cli::Cli::command(),
        "secureclaw-backup",
        &mut out,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn bash_completion_names_commands() {
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut crate::cli::Cli::command(),
            "secureclaw-backup",
            &mut buf,
        );
        let s = String::from_utf8(buf).unwrap();
        assert!(s.contains("secureclaw-backup"));
        assert!(s.contains("prune"));
    }
}
