//! The SLURM engine: one job array per submission. The batch script is written to
//! `SWEEP/slurm/array-<n>.sh` with the fit ids of its tasks in `tasks-<n>.txt` (line i+1 is
//! task i), submitted with `sbatch --parsable`. Tasks are requeueable (`--requeue`): a
//! preempted, requeued or node-failed task starts the worker again, which continues the fit
//! from its last checkpoint. The workers, the sweep folder and the store must be reachable from
//! the compute nodes (a shared file system; for many nodes a PostgreSQL store).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use super::{Engine, Submission, WorkerContext};
use crate::sweep::plan::ResourcesRecord;

/// Submits job arrays with `sbatch`.
#[derive(Debug, Clone)]
pub struct SlurmEngine {
    /// Per-task resources (from the spec's `[resources]`).
    pub resources: ResourcesRecord,
    /// The sweep's name (the job name is `cortexfit-<name>`).
    pub name: String,
}

/// Quotes a word for a POSIX shell.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl SlurmEngine {
    /// The batch script of an array of `tasks` fits whose ids are listed in `task_file`, to
    /// start once the jobs `after` ended (however they ended).
    pub fn script(
        &self,
        ctx: &WorkerContext<'_>,
        task_file: &Path,
        tasks: usize,
        after: &[String],
    ) -> String {
        let r = &self.resources;
        let logs = ctx.sweep_dir.join("logs");
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name=cortexfit-{}\n", self.name));
        s.push_str(&format!("#SBATCH --array=0-{}\n", tasks - 1));
        s.push_str("#SBATCH --requeue\n");
        if !after.is_empty() {
            s.push_str(&format!(
                "#SBATCH --dependency=afterany:{}\n",
                after.join(":")
            ));
        }
        s.push_str("#SBATCH --ntasks=1\n");
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", r.cpus));
        if let Some(m) = &r.memory {
            s.push_str(&format!("#SBATCH --mem={m}\n"));
        }
        if let Some(t) = &r.time {
            s.push_str(&format!("#SBATCH --time={t}\n"));
        }
        if let Some(p) = &r.partition {
            s.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        if r.gpus > 0 {
            s.push_str(&format!("#SBATCH --gres=gpu:{}\n", r.gpus));
        }
        s.push_str(&format!(
            "#SBATCH --output={}\n#SBATCH --open-mode=append\n",
            logs.join("slurm-%A_%a.out").display()
        ));
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!(
            "FIT=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})\n",
            sh_quote(&task_file.display().to_string())
        ));
        let device = if r.gpus > 0 { " --device gpu" } else { "" };
        s.push_str(&format!(
            "exec {} sweep worker --sweep {} --fit \"$FIT\" --store {} --threads {}{device} \
             >> {}/\"$FIT\".log 2>&1\n",
            sh_quote(&ctx.exe.display().to_string()),
            sh_quote(&ctx.sweep_dir.display().to_string()),
            sh_quote(ctx.store),
            r.cpus,
            sh_quote(&logs.display().to_string()),
        ));
        s
    }
}

impl Engine for SlurmEngine {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn submit(
        &mut self,
        ctx: &WorkerContext<'_>,
        ids: &[String],
        after: &[String],
    ) -> anyhow::Result<Submission> {
        if ids.is_empty() {
            return Ok(Submission {
                jobs: Vec::new(),
                message: "nothing to submit".into(),
            });
        }
        let folder = ctx.sweep_dir.join("slurm");
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        std::fs::create_dir_all(ctx.sweep_dir.join("logs"))?;
        let n = (0..)
            .find(|n| !folder.join(format!("array-{n}.sh")).exists())
            .expect("a free name");
        let task_file = folder.join(format!("tasks-{n}.txt"));
        crate::io::atomic_write(&task_file, format!("{}\n", ids.join("\n")).as_bytes())?;
        let script_path = folder.join(format!("array-{n}.sh"));
        crate::io::atomic_write(
            &script_path,
            self.script(ctx, &task_file, ids.len(), after).as_bytes(),
        )?;
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&script_path)
            .output()
            .context("running `sbatch` (is SLURM installed and on PATH?)")?;
        if !out.status.success() {
            bail!(
                "`sbatch {}` failed: {}",
                script_path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let job = text
            .trim()
            .split(';')
            .next()
            .filter(|j| !j.is_empty() && j.chars().all(|c| c.is_ascii_digit()))
            .with_context(|| {
                format!(
                    "`sbatch --parsable` printed `{}`, not a job id",
                    text.trim()
                )
            })?
            .to_string();
        let mut jobs_file = std::fs::read_to_string(folder.join("jobs.txt")).unwrap_or_default();
        jobs_file.push_str(&format!("{job}\n"));
        crate::io::atomic_write(&folder.join("jobs.txt"), jobs_file.as_bytes())?;
        Ok(Submission {
            jobs: (0..ids.len())
                .map(|i| Some(format!("slurm:{job}_{i}")))
                .collect(),
            message: format!(
                "submitted job array {job} ({} tasks{}, script {})",
                ids.len(),
                if after.is_empty() {
                    String::new()
                } else {
                    format!(", after job {}", after.join(", "))
                },
                script_path.display()
            ),
        })
    }
}

/// The job ids this sweep submitted (`SWEEP/slurm/jobs.txt`).
pub fn submitted_jobs(sweep_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(sweep_dir.join("slurm").join("jobs.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The SLURM state of an array task `JOB_TASK` from `squeue` (`PENDING`, `RUNNING`, …), or
/// `None` when it is no longer queued.
pub fn task_state(task: &str) -> anyhow::Result<Option<String>> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-j", task, "-o", "%T"])
        .output()
        .context("running `squeue`")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A job id SLURM has forgotten is not an error for us: it is no longer queued.
        if err.contains("Invalid job id") {
            return Ok(None);
        }
        bail!("`squeue -j {task}` failed: {}", err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from))
}

/// Cancels the sweep's job arrays (`scancel`); returns the job ids cancelled.
pub fn cancel(sweep_dir: &Path) -> anyhow::Result<Vec<String>> {
    let jobs = submitted_jobs(sweep_dir);
    if jobs.is_empty() {
        return Ok(jobs);
    }
    let out = Command::new("scancel")
        .args(&jobs)
        .output()
        .context("running `scancel`")?;
    if !out.status.success() {
        bail!(
            "`scancel {}` failed: {}",
            jobs.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_asks_for_the_spec_resources_and_requeue() {
        let engine = SlurmEngine {
            resources: ResourcesRecord {
                cpus: 4,
                memory: Some("8G".into()),
                time: Some("01:00:00".into()),
                partition: Some("cpu".into()),
                gpus: 1,
            },
            name: "lr".into(),
        };
        let ctx = WorkerContext {
            exe: Path::new("/opt/cortexfit"),
            sweep_dir: Path::new("/s/lr"),
            store: "postgres://u@db/lab",
        };
        let s = engine.script(
            &ctx,
            Path::new("/s/lr/slurm/tasks-0.txt"),
            6,
            &["41".into(), "42".into()],
        );
        for line in [
            "#SBATCH --array=0-5",
            "#SBATCH --requeue",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=8G",
            "#SBATCH --time=01:00:00",
            "#SBATCH --partition=cpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --dependency=afterany:41:42",
        ] {
            assert!(s.contains(line), "{line} missing:\n{s}");
        }
        assert!(
            s.contains("exec '/opt/cortexfit' sweep worker --sweep '/s/lr' --fit \"$FIT\" --store 'postgres://u@db/lab' --threads 4 --device gpu"),
            "{s}"
        );
    }
}
