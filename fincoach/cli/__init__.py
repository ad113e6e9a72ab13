"""The `fincoach` command line: database, demo data, training, jobs, model versions, serving."""

from __future__ import annotations

import typer

from fincoach.cli import data, db, jobs, model_commands, serve

app = typer.Typer(
    help="FinCoach ML backend: database, demo data, training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.command("demo-data")(data.demo_data)
app.command("train")(data.train_cmd)
app.command("evaluate")(data.evaluate_cmd)
app.add_typer(jobs.app, name="jobs")
app.add_typer(model_commands.app, name="models")
app.command("serve")(serve.serve_cmd)


def main() -> None:
    app()
